"""docs/schemas/*.schema.json: generated from the pydantic models (they cannot drift), strict draft 2020-12 for an
independent validator (Ajv, in Node), matching the documents the SDK really writes, and agreeing with the models'
verdict on good and bad documents."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from oracle.client._tasks import build_inputs, load_tasks
from oracle.ipfs import IpfsClient
from oracle.models import AppMetadata, InputRef, InputsDocument
from oracle.network import NetworkProfile, PinningService, read_profile, save_profile
from scripts.gen_schemas import SCHEMAS, render

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "docs" / "schemas"
VALIDATOR = ROOT / "tests" / "node" / "validate_json.js"
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
SHA = "ab" * 32
MODELS: dict[str, type[BaseModel]] = {"inputs": InputsDocument, "app": AppMetadata, "profile": NetworkProfile}
FILES = {"inputs": "inputs-document.schema.json", "app": "app-metadata.schema.json",
         "profile": "network-profile.schema.json"}


def ajv(kind: str, documents: list[Any]) -> list[str]:
    """Ajv's verdict ("ok" or "invalid: ...") on each document, against the committed schema."""
    lines = "".join(json.dumps(d) + "\n" for d in documents)
    done = subprocess.run(["node", str(VALIDATOR), str(SCHEMA_DIR / FILES[kind])], input=lines, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def pydantic_ok(kind: str, document: Any) -> bool:
    try:
        MODELS[kind].model_validate(document)
    except ValidationError:
        return False
    return True


# -- generated, committed, checked ---------------------------------------------------------------------------
def test_the_committed_schemas_are_what_the_models_generate() -> None:
    """Like ``node scripts/compile.js --check`` for the artifacts: change a model, regenerate the schemas."""
    wanted = render()
    assert sorted(wanted) == sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json"))
    for name, text in wanted.items():
        assert (SCHEMA_DIR / name).read_text() == text, f"{name} is stale: run scripts/gen_schemas.py"
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == SCHEMAS[name][0].__name__


def test_check_mode_fails_on_a_stale_or_extra_schema(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, folder)
    script = [sys.executable, str(ROOT / "scripts" / "gen_schemas.py"), "--check", "--dir", str(folder)]
    assert subprocess.run(script, capture_output=True, timeout=60, check=False).returncode == 0
    stale = folder / "app-metadata.schema.json"
    stale.write_text(stale.read_text().replace('"name"', '"title_"', 1))
    (folder / "old.schema.json").write_text("{}\n")
    done = subprocess.run(script, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "app-metadata.schema.json" in done.stderr and "old.schema.json (no longer produced)" in done.stderr


# -- the documents the SDK writes ----------------------------------------------------------------------------
class FakeIpfs:
    """Uploads go nowhere; JSON documents are serialized by the real ``IpfsClient.add_json``."""

    def __init__(self) -> None:
        self.documents: list[bytes] = []

    def add_bytes(self, data: bytes, *, name: str = "data", pin: bool = True) -> str:
        self.documents.append(data)
        return self._cid(data)

    def add_file(self, path: Path, *, pin: bool = True) -> str:
        return self._cid(Path(path).read_bytes())

    def add_json(self, obj: Any) -> str:
        return IpfsClient.add_json(self, obj)  # type: ignore[arg-type]

    @staticmethod
    def _cid(data: bytes) -> str:
        return "bafkrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")[:52]


def test_inputs_documents_the_sdk_writes_are_valid(tmp_path: Path) -> None:
    (tmp_path / "scene.pov").write_text("camera {}\n")
    (tmp_path / "frame-1.ini").write_text("Frame=1\n")
    args = tmp_path / "tasks.json"
    args.write_text(json.dumps([
        ["plain", "arguments"],
        {"args": ["+Iscene.pov", "é ✓ 🙂"], "inputs": {"conf/frame.ini": "frame-1.ini"}, "env": {"QUALITY": "9"}},
        {"args": [], "inputs": {"remote.bin": f"https://data.example/remote.bin#sha256={SHA}",
                                "shared/x": f"ipfs://{CID}"}},
    ]))
    csv = tmp_path / "tasks.csv"
    csv.write_text("args,in:data/frame.ini,env:SEED\n--fast,frame-1.ini,1\n--slow,,2\n")
    ipfs = FakeIpfs()
    common = {"scene.pov": str(tmp_path / "scene.pov"), "lib/colors.inc": f"ipfs://{CID}"}
    extra = [InputRef(uri=f"ipfs://{CID}", path="dataset", size=123)]  # a dataset, as submit_job lists it
    build_inputs(ipfs, load_tasks(args), None, [], common, extra)  # type: ignore[arg-type]
    build_inputs(ipfs, load_tasks(csv), None, [], {}, [])  # type: ignore[arg-type]
    build_inputs(ipfs, None, 10_000, ["+SF{index}", "+EF{index}"], common, [])  # type: ignore[arg-type]
    build_inputs(ipfs, None, None, [], {}, [])  # type: ignore[arg-type]  # one task, no argument
    documents = [json.loads(d) for d in ipfs.documents]
    assert len(documents) == 4 and documents[2]["count"] == 10_000 and "tasks" in documents[0]
    assert ajv("inputs", documents) == ["ok"] * 4


def test_network_profiles_the_sdk_writes_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKNET_HOME", str(tmp_path))
    contracts = {"Marketplace": "0x" + "11" * 20, "MarketplaceRegistry": "0x" + "22" * 20,
                 "TestToken": "0x" + "33" * 20}
    devnet = NetworkProfile(name="devnet", chain_id=31337, rpc_urls=["http://127.0.0.1:8545"], contracts=contracts,
                            deploy_block=0, token=contracts["TestToken"],
                            ipfs_peers=["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJKz1zX4t8b2VbKbP9oKRcmqEhSq5eDwYdRqWwP"],
                            ipfs_gateway="http://127.0.0.1:8080", image_registry="127.0.0.1:5000")
    deployed = NetworkProfile(name="lab.net-2", chain_id=1337, rpc_urls=["http://10.0.0.1:8545", "http://b:8545"],
                              contracts=contracts, deploy_block=42, confirmations=2, swarm_key="0f" * 32,
                              pinning_service=PinningService(endpoint="https://pins.example/api/v1"))
    written = [save_profile(devnet), save_profile(deployed)]
    documents = [json.loads(p.read_text()) for p in written]
    assert [read_profile(p) for p in written] == [devnet, deployed]
    assert ajv("profile", documents) == ["ok", "ok"]


def test_app_metadata_as_the_sdk_dumps_it_is_valid() -> None:
    """(Client.apps.register on the devnet: tests/integration/test_format_documents.py.)"""
    documents = [AppMetadata(name="povray", image="127.0.0.1:5000/tasknet/povray@sha256:" + "ab" * 32,
                             image_archive_cid=CID, command=["povray", "+I/in/scene.pov"],
                             deterministic_file="pixels.ppm", category="render").model_dump(mode="json",
                                                                                           exclude_none=True),
                 AppMetadata(name="echo", image="ipfs://" + CID).model_dump(mode="json", exclude_none=True)]
    assert ajv("app", documents) == ["ok", "ok"]


# -- the same verdict as the models --------------------------------------------------------------------------
def _ref(**kw: Any) -> dict[str, Any]:
    return {"uri": f"ipfs://{CID}", "path": "data.txt", **kw}


CASES: list[tuple[str, Any]] = [
    ("inputs", {"count": 3, "template": {"args": ["{index}"]}}),
    ("inputs", {"version": 1, "tasks": [{}], "common_inputs": [_ref(size=0)]}),
    ("inputs", {"tasks": [{"args": ["a"]}], "template": {"args": ["ignored"]}}),
    ("inputs", {"tasks": [{}], "count": None}),
    ("inputs", {}),
    ("inputs", {"tasks": []}),
    ("inputs", {"count": 3}),
    ("inputs", {"count": 3, "template": None}),
    ("inputs", {"count": 3, "template": {}, "tasks": [{}]}),
    ("inputs", {"count": 0, "template": {}}),
    ("inputs", {"count": 100_001, "template": {}}),
    ("inputs", {"version": 2, "count": 1, "template": {}}),
    ("inputs", {"tasks": [{"args": ["x" * 4096]}]}),
    ("inputs", {"tasks": [{"args": ["x" * 4097]}]}),
    ("inputs", {"tasks": [{"args": ["🙂" * 4096]}]}),
    ("inputs", {"tasks": [{"args": ["a\u0000b"]}]}),
    ("inputs", {"tasks": [{"args": ["a"] * 65}]}),
    ("inputs", {"tasks": [{"env": {f"V{i}": "x" for i in range(65)}}]}),
    ("inputs", {"tasks": [{"inputs": [_ref()] * 257}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(size=-1)]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"ipfs://Qm{'a' * 44}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri="ipfs://not-a-cid")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"ipfs://{CID}/sub")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"https://h/x?y=1#sha256={SHA}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"http://h/x#sha256={SHA}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"https://h/x#sha256={SHA.upper()}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri="https://h/x")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"https://h#a#sha256={SHA}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"ftp://h/x#sha256={SHA}")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="a/b-c_d.e")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="/etc/passwd")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="a/../b")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="..")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="a..b")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="with space")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="é")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="p" * 200)]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(path="p" * 201)]}]}),
    ("inputs", {"tasks": [{"inputs": [{"uri": f"ipfs://{CID}"}]}]}),
    ("inputs", {"tasks": [{"args": "not a list"}]}),
    ("app", {"name": "a", "image": "img"}),
    ("app", {"name": "a", "image": "img", "command": ["x"], "deterministic_file": None, "extra": 1}),
    ("app", {"image": "img"}),
    ("app", {"name": "a", "image": "img", "command": "x"}),
    ("profile", {"name": "devnet", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}}),
    ("profile", {"name": "Devnet", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}}),
    ("profile", {"name": "-x", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}}),
    ("profile", {"name": "x" * 65, "chain_id": 1, "rpc_urls": ["u"], "contracts": {}}),
    ("profile", {"name": "n", "chain_id": 0, "rpc_urls": ["u"], "contracts": {}}),
    ("profile", {"name": "n", "chain_id": 1, "rpc_urls": [], "contracts": {}}),
    ("profile", {"name": "n", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}, "swarm_key": "0F" * 32}),
    ("profile", {"name": "n", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}, "swarm_key": "0f" * 32}),
    ("profile", {"name": "n", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}, "unknown": 1}),
    ("profile", {"name": "n", "chain_id": 1, "rpc_urls": ["u"], "contracts": {},
                 "pinning_service": {"endpoint": "https://p", "token": "secret"}}),
]


def test_the_schemas_and_the_models_agree_on_good_and_bad_documents() -> None:
    for kind in MODELS:
        cases = [doc for k, doc in CASES if k == kind]
        verdicts = ajv(kind, cases)
        for doc, verdict in zip(cases, verdicts, strict=True):
            assert (verdict == "ok") == pydantic_ok(kind, doc), (kind, json.dumps(doc)[:200], verdict)


@pytest.mark.parametrize(("kind", "doc"), [
    ("inputs", {"tasks": [{"inputs": [_ref(path="data.txt\n")]}]}),
    ("inputs", {"tasks": [{"inputs": [_ref(uri=f"ipfs://{CID}\n")]}]}),
    ("profile", {"name": "devnet\n", "chain_id": 1, "rpc_urls": ["u"], "contracts": {}}),
])
def test_a_final_line_break_is_refused_by_the_models_too(kind: str, doc: Any) -> None:
    assert not pydantic_ok(kind, doc)
    assert ajv(kind, [doc])[0] != "ok"
