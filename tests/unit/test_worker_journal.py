"""worker._journal: steps survive a reopen (a crash), data merges, unfinished lists what to resume."""

from __future__ import annotations

from pathlib import Path

from worker._journal import Journal, Step


def test_steps_and_data_survive_a_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record(7, 3, Step.CLAIMED, claim_block=12)
    j.record(7, 3, Step.COMMITTED, salt="0xabc", digest="0x01")
    j.record(8, 0, Step.CLAIMED)
    j.record(8, 0, Step.DONE)
    j.set_value("cursor", {"next_block": 42})
    j.close()

    j2 = Journal(tmp_path / "journal.db")
    rec = j2.get(7, 3)
    assert rec is not None and rec.step is Step.COMMITTED
    assert rec.data == {"claim_block": 12, "salt": "0xabc", "digest": "0x01"}
    assert [r.task_key for r in j2.unfinished()] == ["7:3"]
    assert j2.get_value("cursor") == {"next_block": 42}
    assert [s for s, _ in j2.history(7, 3)] == [Step.CLAIMED, Step.COMMITTED]
    assert j2.get(9, 9) is None
