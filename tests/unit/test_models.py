"""oracle.models: the inputs document accepts what requesters write and refuses hostile input clearly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from oracle.models import InputRef, InputsDocument

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_template_form_expands_index_and_adds_common_inputs() -> None:
    doc = InputsDocument(count=10_000, template={"args": ["--frame", "{index}"]},
                         common_inputs=[{"uri": f"ipfs://{CID}", "path": "scene.pov"}])
    assert doc.task_count == 10_000
    t = doc.task(9_999)
    assert t.args == ["--frame", "9999"] and t.inputs[0].path == "scene.pov"
    with pytest.raises(IndexError, match="out of range"):
        doc.task(10_000)


def test_list_form() -> None:
    doc = InputsDocument(tasks=[{"args": ["a"]}, {"args": ["b"], "inputs": [{"uri": f"ipfs://{CID}", "path": "x"}]}])
    assert doc.task_count == 2 and doc.task(1).inputs[0].cache_key == CID


@pytest.mark.parametrize(("doc", "msg"), [
    ({}, "either 'tasks'"),
    ({"tasks": [], "count": 1, "template": {}}, "either 'tasks'"),
    ({"tasks": []}, "at least one task"),
    ({"count": 3}, "needs a 'template'"),
    ({"tasks": [{"inputs": [{"uri": "ipfs://nope", "path": "a"}]}]}, "is not ipfs://<CID>"),
    ({"tasks": [{"inputs": [{"uri": "https://x.test/a", "path": "a"}]}]}, "#sha256="),
    ({"tasks": [{"inputs": [{"uri": "ftp://x/a", "path": "a"}]}]}, "must be ipfs://CID"),
    ({"tasks": [{"inputs": [{"uri": f"ipfs://{CID}", "path": "../etc/passwd"}]}]}, "safe relative path"),
    ({"tasks": [{"inputs": [{"uri": f"ipfs://{CID}", "path": "/abs"}]}]}, "safe relative path"),
    ({"version": 2, "tasks": [{}]}, "version"),
])
def test_malformed_documents_are_refused_with_a_reason(doc: dict, msg: str) -> None:
    with pytest.raises(ValidationError, match=msg):
        InputsDocument.model_validate(doc)


def test_http_input_cache_key_is_its_checksum() -> None:
    ref = InputRef(uri="https://data.test/a.bin#sha256=" + "ab" * 32, path="a.bin")
    assert ref.cache_key == "sha256:" + "ab" * 32
