"""The worked examples of docs/FORMATS.md are what the code computes: the EIP-712 hashes and signature
(``oracle.protocol``) and the example archive's digest (``oracle.archive.pack_result`` and the Node archive)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from eth_account import Account

from oracle.archive import pack_result
from oracle.protocol import (
    Eip712Domain,
    commitment,
    hash_commit,
    hash_results,
    hash_reveal,
    sign_commit,
    task_id,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "FORMATS.md"


def example(name: str) -> str:
    """The fenced block right after ``<!-- example:NAME -->``."""
    match = re.search(rf"<!-- example:{name} -->\n```\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"FORMATS.md has no example '{name}'"
    return match.group(1)


def fields(block: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines()) if v}


def test_the_eip712_example() -> None:
    f = fields(example("eip712"))
    account = Account.from_key(f["privateKey"])
    assert account.address == f["worker"]
    tid = task_id(int(f["jobId"]), int(f["index"]))
    assert tid == int(f["taskId"])
    domain = Eip712Domain(chain_id=int(f["chainId"]), verifying_contract=f["verifyingContract"])
    c = commitment(tid, f["resultDigest"], f["salt"], f["worker"])
    callback = bytes.fromhex(f["callbackData"].removeprefix("0x"))
    assert "0x" + c.hex() == f["commitment"]
    assert "0x" + domain.separator().hex() == f["domainSeparator"]
    assert "0x" + hash_commit(domain, tid, c).hex() == f["hashCommit"]
    assert "0x" + hash_reveal(domain, tid, f["resultDigest"], f["salt"], f["resultCID"], callback).hex() == \
        f["hashReveal"]
    assert "0x" + hash_results(domain, tid, tid, [f["resultDigest"]], [f["resultCID"]]).hex() == f["hashResults"]
    assert "0x" + sign_commit(account, domain, tid, c).hex() == f["signatureCommit"]


def test_the_archive_example(tmp_path: Path) -> None:
    block = example("archive")
    out, logs = tmp_path / "out", tmp_path / "logs"
    for line in block.splitlines():
        m = re.match(r'(output|logs)/(\S+)\s+("(?:[^"\\]|\\.)*")(?:\s+mode (\d+))?', line)
        if not m:
            continue
        path = (out if m.group(1) == "output" else logs) / m.group(2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.loads(m.group(3)))
        os.chmod(path, int(m.group(4) or "644", 8))
    f = fields(block)
    packed = pack_result(out, tmp_path / "a.tar", logs={p.name: p for p in logs.iterdir()})
    assert (packed.archive_size, packed.archive_sha256) == (int(f["archive size"]), f["archive sha256"])
    done = subprocess.run(["node", str(ROOT / "scripts" / "result_archive.js"), "pack", "--output", str(out),
                           "--logs", str(logs)], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout)["digest"] == f["archive sha256"]
    header = packed.archive_path.read_bytes()[2048:2560]  # output/hello.txt, as the hex dump shows it
    assert header.startswith(b"output/hello.txt\0") and header[100:108] == b"0000644\0"
    assert header[148:156] == b"011145\0 " and header[257:265] == b"ustar\x0000"
