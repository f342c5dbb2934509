"""The worker's saved market view keeps its format now that it reads typed event arguments: a view saved by the
code before (commit eff6bd4, ``data/worker_view_eff6bd4.json``, made by applying the events below) loads into an
equal view, and the same events applied now give the same JSON. Offline: the events are built by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oracle.events import DecodedEvent
from oracle.protocol import task_id
from worker._journal import Journal, Step
from worker._view import DatasetHint, MarketView

SAVED = Path(__file__).parent / "data" / "worker_view_eff6bd4.json"


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
    assert view.model_dump(mode="json") == saved
    assert isinstance(view.datasets[2], DatasetHint) and view.datasets[2].size == 1234
    assert view.apps[2].deprecated and view.jobs[6].confidence_ppb == 990_000_000


def test_the_same_events_give_the_same_saved_view() -> None:
    view = MarketView()
    for e in events:
        view.apply(e)
    assert view.model_dump(mode="json") == json.loads(SAVED.read_text())


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
