"""The SDK's JSON edges parse into models at once: the result manifest's lines (pure file logic on a temporary
folder) and the indexer's answers (the indexer's HTTP API replaced by an httpx MockTransport: what is isolated is
the client's parsing of the JSON the indexer's JobOut/TaskOut models produce, not the indexer)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from oracle.client._indexer import IndexerApi
from oracle.client._manifest import MANIFEST, ResultManifest
from oracle.client._models import TaskResult
from oracle.client._reads import indexer_row

MARKET = "0x" + "AB" * 20


def test_the_manifest_reads_back_what_it_wrote_and_skips_torn_or_foreign_lines(tmp_path: Path) -> None:
    m = ResultManifest(tmp_path, 7, MARKET)
    m.add(TaskResult(index=2, task_id=0, digest="aa" * 32, cid="bafy", verified=True, digest_source="archive",
                     files=3, bytes=10))
    with (tmp_path / MANIFEST).open("a") as fh:
        # a line in the earlier json.dumps layout, one of another job, one torn by a crash
        fh.write(json.dumps({"job_id": 7, "marketplace": MARKET.lower(), "index": 4, "digest": "bb" * 32,
                             "cid": "bafz", "source": "file", "files": 1, "bytes": 5}) + "\n")
        fh.write(json.dumps({"job_id": 8, "marketplace": MARKET.lower(), "index": 5, "digest": "cc" * 32,
                             "cid": "bafx", "source": "file"}) + "\n")
        fh.write('{"job_id": ')
    (tmp_path / "2").mkdir()
    again = ResultManifest(tmp_path, 7, MARKET)
    assert sorted(again.entries) == [2, 4]
    assert again.verified(2, "aa" * 32) and not again.verified(2, "bb" * 32)
    assert not again.verified(4, "bb" * 32)  # its folder is gone
    assert again.entries[4].source == "file" and again.entries[2].files == 3


def test_the_indexers_job_and_task_rows_are_parsed_into_models() -> None:
    job = {"job_id": 1, "status": "closed", "requester": "0x" + "11" * 20, "app_id": 2, "dataset_id": 0,
           "num_tasks": 4, "replication": 1, "reward": str(10**18), "deadline": 99, "escrow_held": "0",
           "claimed": 4, "settled": 4, "finished": 3, "failed": 1, "cancelled": 0, "refund": "0", "extra": True}
    rows = {"items": [{"idx": 0, "status": "running", "worker": "0x" + "22" * 20, "result_digest": None,
                       "result_cid": None, "claims": 1}], "total": 1, "limit": 50, "offset": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=job if request.url.path.startswith("/api/jobs/") else rows)

    api = IndexerApi("http://indexer.test", transport=httpx.MockTransport(answer))
    j = api.job(1)
    assert (j.status, j.reward, j.escrow_held, j.finished) == ("closed", 10**18, 0, 3)
    page = api.tasks(1)
    assert page.total == 1
    state = indexer_row(page.items[0])
    assert (state.index, state.state, state.workers) == (0, "claimed", ["0x" + "22" * 20])
