"""The requester's one-pass reading of a job's result events (oracle.client._scan.JobResults): pure logic."""

from __future__ import annotations

from oracle.client._scan import RESULT_EVENTS, JobResults, RawEvent
from oracle.protocol import task_id

A, B, C = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
GOOD, BAD = "0x" + "11" * 32, "0x" + "22" * 32


def _ev(n: int, name: str, **args: object) -> RawEvent:
    return RawEvent(name=name, args=dict(args), block_number=n, log_index=0, tx_hash="0x" + f"{n:064x}")


def test_a_confirmed_failure_is_a_result_held_by_the_reports_of_its_digest() -> None:
    """(R = 1) FailureConfirmed settles a task with the digest two workers reported: result get fetches the
    failure archive from their CIDs (a report of another digest is not one of them)."""
    tid = task_id(7, 3)
    found = JobResults.from_events([
        _ev(1, "FailureReported", taskId=tid, worker=C, resultDigest=BAD, resultCID="bafy-other", reports=1),
        _ev(2, "FailureReported", taskId=tid, worker=A, resultDigest=GOOD, resultCID="bafy-a", reports=2),
        _ev(3, "FailureReported", taskId=tid, worker=B, resultDigest=GOOD, resultCID="bafy-b", reports=3),
        _ev(4, "FailureConfirmed", taskId=tid, resultDigest=GOOD, firstWorker=A, confirmer=B, rewardEach=1),
    ])
    assert found.digests == {3: GOOD} and found.cids == {3: ["bafy-a", "bafy-b"]} and found.workers == {3: [A, B]}
    assert not found.failed
    assert {"FailureReported", "FailureConfirmed"} <= set(RESULT_EVENTS)


def test_a_reported_failure_alone_is_no_result_yet() -> None:
    tid = task_id(7, 0)
    found = JobResults.from_events([
        _ev(1, "FailureReported", taskId=tid, worker=A, resultDigest=BAD, resultCID="bafy-a", reports=1)])
    assert not found.digests and not found.failed
