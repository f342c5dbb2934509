"""A relayed R = 1 result whose batch lands between the worker's two reads (``Pipeline._await_relayed_result``):
first the worker finds no ``ResultSubmitted`` of its own, then it finds its lease gone, because that very batch
settled it and deleted the lease. The chain's answers are replaced by fakes, which is what this test isolates; the
real relay path runs in tests/integration/test_worker_relay.py (where CI once saw the task journaled LOST)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from worker._journal import Journal, Step
from worker._pipeline import Pipeline

ME = "0x" + "ab" * 20
GONE = SimpleNamespace(worker="0x" + "00" * 20, expiry=0)


class Chain:
    """The two reads: the lease (the relayer's batch lands just before it is read when ``lands``, and deletes it)
    and our ``ResultSubmitted`` (there once the batch landed)."""

    def __init__(self, lands: bool) -> None:
        self.lands, self.landed = lands, False

    def lease_view(self, tid: int) -> SimpleNamespace:
        self.landed = self.lands
        return GONE

    def submitted(self, tid: int, rec: object) -> bool:
        return self.landed


def pipeline(tmp_path: Path, chain: Chain) -> Pipeline:
    p = Pipeline.__new__(Pipeline)  # only what _await_relayed_result reads
    p.journal = Journal(tmp_path / "journal.db")
    p.market = SimpleNamespace(lease_view=chain.lease_view, chain_time=lambda: 0)  # type: ignore[assignment]
    p.me = ME
    p._already_submitted = chain.submitted  # type: ignore[method-assign,assignment]
    p._net_reward = lambda job: 7  # type: ignore[method-assign]
    return p


@pytest.mark.parametrize(("lands", "step"), [(True, Step.DONE), (False, Step.LOST)])
def test_a_lease_gone_because_the_relayed_result_landed_is_done_and_otherwise_lost(
        tmp_path: Path, lands: bool, step: Step) -> None:
    p = pipeline(tmp_path, Chain(lands))
    rec = p.journal.record(3, 2, Step.SUBMITTED, relayed=True)
    out = p._await_relayed_result(SimpleNamespace(job_id=3), (3 << 32) | 2, rec)  # type: ignore[arg-type]
    assert out.step is step and p.journal.get(3, 2).step is step  # type: ignore[union-attr]
    if step is Step.DONE:
        assert out.data["outcome"] == "paid" and out.data["earned"] == 7
