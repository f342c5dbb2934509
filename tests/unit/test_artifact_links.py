"""Library links in the artifacts (issue 21): solc's link references, Truffle's placeholders, and the network
artifacts' ``links``; linking by offset (oracle) agrees with them. Offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oracle import load_artifact
from oracle._artifacts import manifest
from oracle._deploy import LINKED_LIBRARIES, link_bytecode
from oracle.exceptions import ArtifactError, DevnetError
from tasknet._devnet import write_network_artifacts

ADDRESSES = {"ReplicaLogic": "0x" + "11" * 20, "AccountLogic": "0x" + "2a" * 20}
FQ = {LINKED_LIBRARIES[name]: address for name, address in ADDRESSES.items()}


def placeholders(code: str) -> set[str]:
    return set(re.findall(r"__[A-Za-z0-9$]+_*", code))


@pytest.mark.parametrize("name", manifest()["contracts"])
def test_every_artifact_says_where_its_libraries_go(name: str) -> None:
    art = load_artifact(name)
    for code, refs in ((art["bytecode"], art["linkReferences"]), (art["deployedBytecode"], art["deployedLinkReferences"])):
        assert isinstance(refs, dict)
        spots = [(lib, p) for libs in refs.values() for lib, places in libs.items() for p in places]
        for lib, place in spots:  # Truffle's placeholder, 40 characters, exactly where solc said
            assert place["length"] == 20
            assert code[2 + 2 * place["start"]:][:40] == f"__{lib}".ljust(40, "_")
        assert len(placeholders(code)) == len({lib for lib, _ in spots})  # and nowhere else
        assert re.fullmatch(r"0x[0-9a-f]*", link_bytecode(code, FQ, refs) if spots else code)


def test_the_marketplace_links_both_libraries_in_its_creation_and_runtime_code() -> None:
    art = load_artifact("Marketplace")
    for refs in (art["linkReferences"], art["deployedLinkReferences"]):
        assert {f"{source}:{lib}" for source, libs in refs.items() for lib in libs} == set(LINKED_LIBRARIES.values())
    assert placeholders(art["bytecode"]) == {f"__{n}".ljust(40, "_") for n in LINKED_LIBRARIES}


def test_linking_writes_the_addresses_at_the_offsets_and_refuses_a_missing_library() -> None:
    art = load_artifact("Marketplace")
    linked = link_bytecode(art["bytecode"], FQ, art["linkReferences"])
    assert len(linked) == len(art["bytecode"])
    assert linked.count("11" * 20) >= 1 and linked.count("2a" * 20) >= 1
    with pytest.raises(ArtifactError, match="AccountLogic"):
        link_bytecode(art["bytecode"], {LINKED_LIBRARIES["ReplicaLogic"]: ADDRESSES["ReplicaLogic"]},
                      art["linkReferences"])
    with pytest.raises(ArtifactError, match="npm run compile"):
        link_bytecode(art["bytecode"], FQ, {})


def test_network_artifacts_carry_truffle_links_and_linked_bytecode(tmp_path: Path) -> None:
    contracts = {"TestToken": "0x" + "01" * 20, "Marketplace": "0x" + "02" * 20, **ADDRESSES}
    write_network_artifacts(tmp_path, 31337, contracts)
    market = json.loads((tmp_path / "Marketplace.json").read_text())
    assert market["networks"] == {"31337": {"address": contracts["Marketplace"], "links": ADDRESSES}}
    shipped = load_artifact("Marketplace")
    assert market["bytecode"] == link_bytecode(shipped["bytecode"], FQ, shipped["linkReferences"])
    assert market["deployedBytecode"] == link_bytecode(shipped["deployedBytecode"], FQ,
                                                       shipped["deployedLinkReferences"])
    assert market["linkReferences"] == shipped["linkReferences"]
    token = json.loads((tmp_path / "TestToken.json").read_text())
    assert token["networks"] == {"31337": {"address": contracts["TestToken"]}}
    with pytest.raises(DevnetError, match="AccountLogic"):
        write_network_artifacts(tmp_path, 31337, {"Marketplace": contracts["Marketplace"],
                                                  "ReplicaLogic": ADDRESSES["ReplicaLogic"]})
