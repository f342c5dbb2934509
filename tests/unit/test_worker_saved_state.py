"""The worker's saved state keeps its format now that it is typed. The market view (typed event arguments): a view
saved by the code before (commit eff6bd4, ``data/worker_view_eff6bd4.json``, made by applying the events below) loads
into an equal view, and the same events applied now give the same JSON. The journal (typed records): one written by
that code (``data/worker_journal_eff6bd4.sql``, a dump of the file it wrote with every key its daemon journals)
opens, its records read typed, and its rows stay as they were written. Offline: the events are built by hand."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from oracle.events import DecodedEvent
from oracle.market import JobView
from oracle.protocol import task_id
from worker._journal import Journal, Step
from worker._view import DatasetHint, MarketView

SAVED = Path(__file__).parent / "data" / "worker_view_eff6bd4.json"
#: fields the view gained since that file was saved, as an old view loads them (empty)
ADDED = {"chunks": {}}
JOURNAL = Path(__file__).parent / "data" / "worker_journal_eff6bd4.sql"


def ev(name: str, **args: Any) -> DecodedEvent:
    return DecodedEvent(name=name, args=args, address="0x" + "11" * 20, block_number=1, block_hash="0x",
                        tx_hash="0x", log_index=0)


W = "0x" + "ab" * 20
params = {"appId": 1, "datasetId": 2, "numTasks": 8, "replication": 1, "reward": 10, "deadline": 2_000_000_000,
          "maxRunSeconds": 60, "cores": 1, "memoryMB": 64, "gpus": 0, "archMask": 1, "minReputation": 0,
          "callback": "0x" + "00" * 20, "inputsCID": "bafyinputs", "encryptionKey": "0x"}
events = [
    ev("AppRegistered", appId=1, owner=W, imageRef="busybox", imageDigest="0x" + "cd" * 32, metadataURI="ipfs://m",
       price=3, isPublic=True, deterministicFile=""),
    ev("AppRegistered", appId=2, owner=W, imageRef="old", imageDigest="0x" + "ce" * 32, metadataURI="", price=0,
       isPublic=False, deterministicFile="out.txt"),
    ev("AppDeprecated", appId=2),
    ev("DatasetRegistered", datasetId=2, owner=W, cid="bafydata", checksum="0x" + "ef" * 32, size=1234, price=0,
       anyRequester=True, anyApp=True),
    ev("JobPosted", jobId=5, requester=W, appId=1, params=params, escrow=99),
    ev("JobPosted", jobId=6, requester=W, appId=1, params={**params, "replication": 3, "numTasks": 4}, escrow=7),
    ev("JobCredibility", jobId=6, confidencePpb=990_000_000, faultBps=1000, spotCheckBps=0),
    ev("TasksClaimed", startTaskId=task_id(5, 0), worker=W, count=3, expiry=1_900_000_000),
    ev("ResultSubmitted", taskId=task_id(5, 0), worker=W, resultDigest="0x" + "00" * 32, resultCID="bafyr"),
    ev("TasksCancelled", jobId=5, firstIndex=6, count=2, refund=1),
    ev("ReplicaClaimed", taskId=task_id(6, 1), worker=W, replica=0, expiry=1_900_000_100),
    ev("ReplicaClaimed", taskId=task_id(6, 1), worker="0x" + "cc" * 20, replica=1, expiry=1_900_000_100),
    ev("ResultCommitted", taskId=task_id(6, 1), worker=W, commitment="0x" + "01" * 32),
    ev("TaskPlatformClassBound", taskId=task_id(6, 1), platformClass="0x" + b"amd64".ljust(32, b"\0").hex()),
    ev("ReplicasAdded", taskId=task_id(6, 2), target=3),
    ev("TaskFinalized", taskId=task_id(6, 0), resultDigest="0x" + "02" * 32, winners=1, rewardEach=5),
]


def test_a_view_saved_before_loads_unchanged() -> None:
    saved = json.loads(SAVED.read_text())
    view = MarketView.model_validate(saved)
    assert view.model_dump(mode="json") == {**saved, **ADDED}
    assert isinstance(view.datasets[2], DatasetHint) and view.datasets[2].size == 1234
    assert view.apps[2].deprecated and view.jobs[6].confidence_ppb == 990_000_000


def test_the_same_events_give_the_same_saved_view() -> None:
    view = MarketView()
    for e in events:
        view.apply(e)
    assert view.model_dump(mode="json") == {**json.loads(SAVED.read_text()), **ADDED}


def test_bytes_arguments_read_as_hex() -> None:
    """The ABI decoder may give ``bytes32`` arguments as bytes: the saved view holds them as 0x-hex, as before."""
    view = MarketView()
    view.apply(ev("DatasetRegistered", datasetId=2, owner=W, cid="bafydata", checksum=b"\xef" * 32, size=1234,
                  price=0, anyRequester=True, anyApp=True))
    assert view.datasets[2].checksum == "0x" + "ef" * 32


def test_a_claim_record_keeps_the_dataset_as_before(tmp_path: Path) -> None:
    """A claim journals its dataset hint as the plain object the code before wrote (and a journal written by that
    code, with the dataset as a dict, reads back the same)."""
    before = {"cid": "bafydata", "owner": W, "size": 1234, "checksum": "0x" + "ef" * 32}
    journal = Journal(tmp_path / "journal.db")
    journal.record(5, 0, Step.CLAIMED, dataset=before, expiry=1, lease=task_id(5, 0), lease_count=1)
    hint = MarketView.model_validate(json.loads(SAVED.read_text())).datasets[2]
    assert hint.model_dump() == before
    rec = journal.get(5, 0)
    assert rec is not None and rec.data["dataset"] == before and DatasetHint.model_validate(rec.data["dataset"]) == hint


def _rows(path: Path) -> dict[str, tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return {k: (step, data) for k, step, data in db.execute(
            "SELECT task_key, step, data FROM tasks UNION ALL SELECT task_key, step, data FROM finished")}


def test_a_journal_written_before_opens_with_typed_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as db:
        db.executescript(JOURNAL.read_text())
    written = _rows(path)
    j = Journal(path)
    recs = {r.task_key: r for r in j.all()}
    assert set(recs) == {"5:0", "5:1", "5:2", "5:3", "6:1", "6:2", "6:3"}
    live = recs["6:1"]
    assert live.step == Step.REVEALED and [r.task_key for r in j.unfinished()] == ["6:1"]
    d = live.data
    assert (d["replica"], d["relay_id"], d["relayed"], d["slurm_job"], d["slurm_node"]) == (0, 9, True, "4242", "node-1")
    assert d["paused"] is None and d["ran_s"] == 12.5 and d["run_by"] == 1_900_000_050 and d["attempts"] == 1
    assert d["dataset"] is None and JobView.model_validate(d["job"]).confidence_ppb == 990_000_000
    assert recs["5:0"].data["earned"] == 9 * 10**16 and "job" not in recs["5:0"].data  # compacted when finished
    assert recs["5:1"].data.get("unpinned") is True and recs["5:3"].data["reason"] == "the lease is no longer ours"
    assert [r.task_key for r in j.pinned_before(2e9)] == ["5:0", "6:2"] and j.unpin_due(2e9) == [recs["5:0"]]
    s = j.summary()
    assert (s.earned, s.steps[Step.DONE], s.steps[Step.ABANDONED], s.steps[Step.FAILED]) == (14 * 10**16, 3, 1, 1)
    assert j.get_value("gpus") == {"gpus": 0, "gpu_devices": [], "gpu_note": "no GPU found"}
    assert MarketView.model_validate(j.get_value("stream")["view"]).model_dump(mode="json") == {
        **json.loads(SAVED.read_text()), **ADDED}
    j.record(6, 1, Step.REVEALED, note="read again")  # a step that adds nothing rewrites the same JSON
    j.close()
    assert _rows(path) == written
