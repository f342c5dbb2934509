"""Requester commands whose cost does not follow the job's size (issue #22), on the session's devnet: ``tasknet job
status`` prints a summary from the chain's counters (or an indexer) and pages its task rows; ``tasknet result get``
resumes from the manifest it keeps in its output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import test_client_helpers as helpers
from fastapi.testclient import TestClient
from test_client_helpers import E18, as_json, client, drive_worker, enroll, register_echo_app, tasknet
from web3 import Web3

from indexer import Indexer, create_app, make_engine
from oracle import send
from oracle.client._indexer import IndexerApi
from oracle.client import JobSpec
from oracle.exceptions import ContentNotFound

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


@pytest.fixture
def job12(devnet_file: Path, app_image: str, w3: Web3, accounts: list[Any], tmp_path: Path) -> int:
    """A bag of 12: tasks 0..6 finalized (an honest worker driven by hand), 7 claimed, 8 and 9 open, 10 and 11
    cancelled."""
    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=20 * E18)
    job = c.jobs.submit(JobSpec(app_id=app_id, count=12, args=["{index}"], reward=E18 // 10)).job_id
    assert c.jobs.cancel(job, 10, 2) == (2, 2 * (E18 // 10))
    worker = accounts[4]
    enroll(w3, c.market, worker)
    drive_worker(w3, c.market, c.ipfs, [worker], job, tmp_path / "hand", indexes=list(range(7)))
    send(w3, c.market.contract.functions.claim((job << 32) | 7), worker, extra_abis=c.market.error_abis)
    return job


def test_job_status_prints_a_summary_from_the_counters_and_pages_task_rows(job12: int) -> None:
    job = str(job12)
    summary = as_json("job", "status", job)
    assert "tasks" not in summary  # rows only when asked for
    s = summary["job"]
    assert (s["source"], s["total"], s["finalized"], s["failed"], s["cancelled"], s["refunded"], s["unsettled"]) == \
        ("chain", 12, 7, 0, 2, 0, 3)
    assert s["progress"] == 0.75 and not s["closed"] and s["escrow_left"] == 3 * (E18 // 10)
    text = tasknet("job", "status", job).stdout
    assert "75.0% settled: 7 finalized, 0 failed, 2 cancelled, 3 to settle" in text

    page = as_json("job", "status", job, "--tasks", "--page", "2", "--per-page", "5")
    assert page["page"] == {"job_id": job12, "source": "chain", "state": None, "page": 2, "per_page": 5, "total": 12}
    assert [(t["index"], t["state"]) for t in page["tasks"]] == [
        (5, "finalized"), (6, "finalized"), (7, "claimed"), (8, "open"), (9, "open")]
    assert page["tasks"][0]["digest"].startswith("0x") and page["tasks"][0]["cid"] and page["tasks"][0]["workers"]
    last = as_json("job", "status", job, "--tasks", "--page", "3", "--per-page", "5")
    assert [(t["index"], t["state"]) for t in last["tasks"]] == [(10, "cancelled"), (11, "cancelled")]
    assert [t["index"] for t in as_json("job", "status", job, "--state", "cancelled")["tasks"]] == [10, 11]
    assert as_json("job", "status", job, "--state", "failed")["tasks"] == []
    finalized = as_json("job", "status", job, "--state", "finalized", "--per-page", "3", "--page", "3")
    assert finalized["page"]["total"] == 7 and [t["index"] for t in finalized["tasks"]] == [6]
    table = tasknet("job", "status", job, "--tasks", "--per-page", "4").stdout
    assert "page 1 of 3, 12 row(s)" in table and "next: --page 2" in table


def test_job_status_reads_an_indexer_when_one_is_given(devnet_file: Path, job12: int, w3: Web3,
                                                       tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "mirror.db"))
    with client(devnet_file) as c:
        Indexer(engine, w3, c.market.address).sync()
        c.indexer = IndexerApi("http://testserver")
        c.indexer._http = TestClient(create_app(engine))
        s = c.jobs.summary(job12)
        assert (s.source, s.finalized, s.cancelled, s.unsettled, s.running, s.claimed) == ("indexer", 7, 2, 3, 1, 8)
        page = c.jobs.task_page(job12, page=2, per_page=5)
        assert page.source == "indexer" and page.total == 8  # the indexer has rows for claimed tasks only
        assert [(t.index, t.state) for t in page.items] == [(5, "finalized"), (6, "finalized"), (7, "claimed")]
        assert [t.index for t in c.jobs.task_page(job12, state="claimed").items] == [7]


def test_result_get_resumes_from_its_manifest_and_downloads_nothing_twice(devnet_file: Path, job12: int,
                                                                         tmp_path: Path) -> None:
    out = tmp_path / "results"

    def get() -> Any:  # results made by hand carry no logs/status.txt: each is a finalized run without a status
        doc = json.loads(tasknet("result", "get", str(job12), str(out), "--json", code=5).stdout)
        assert [(f["index"], f["reason"]) for f in doc["failed"]] == [(i, "no-status") for i in range(7)]
        return doc

    assert get()["resumed"] == 0
    manifest = [json.loads(line) for line in (out / ".tasknet-results.jsonl").read_text().splitlines()]
    assert sorted(e["index"] for e in manifest) == list(range(7))
    assert get()["resumed"] == 7
    assert (out / "3" / "output" / "result.txt").read_text() == "args: 3\n"

    with client(devnet_file) as c:
        def no_download(*args: Any, **kw: Any) -> None:
            raise ContentNotFound("the second run must not download anything")

        c.ipfs.cat_to = no_download  # type: ignore[method-assign]
        again = c.results.download(job12, out)
        assert all(r.resumed for r in again) and [r.index for r in again] == list(range(7))
        # a folder removed since, or an interrupted run (a torn manifest line), is fetched again, and only it
        import shutil

        shutil.rmtree(out / "3")
        with (out / ".tasknet-results.jsonl").open("a") as fh:
            fh.write('{"job_id": ')
        c.ipfs.cat_to = type(c.ipfs).cat_to.__get__(c.ipfs)  # type: ignore[method-assign]
        third = c.results.download(job12, out)
        assert [r.index for r in third if not r.resumed] == [3]
        assert (out / "3" / "output" / "result.txt").read_text() == "args: 3\n"
