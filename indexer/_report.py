"""The verifier's findings: a :class:`Check` per rule, a :class:`Report` per task or job (see :mod:`indexer._verify`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue


class Check(BaseModel):
    name: str
    subject: str = Field(description="what the check is about: a worker, a CID, the task")
    passed: bool | None = Field(description="None when the check could not run (see detail)")
    detail: str
    evidence: dict[str, JsonValue] = Field(default_factory=dict)


class Report(BaseModel):
    kind: Literal["task", "job"]
    id: int
    status: str = Field(description="the outcome the chain recorded: finalized, failed, running, ...")
    passed: bool
    checks: list[Check]
    tasks: list[Report] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict, description="(jobs) tasks by outcome: succeeded, "
                                   "failed_runs (a finalized result whose app failed), failed (on chain), "
                                   "cancelled, unsettled")

    @property
    def run(self) -> str | None:
        """(tasks) How the app's run ended, from the checked result's logs/status.txt: ``ok``, a failure reason,
        or None when no result content could be read."""
        for c in self.checks:
            if c.name == "archive_digest" and c.passed and c.evidence.get("run"):
                return str(c.evidence["run"])
        return None

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False] + [c for t in self.tasks for c in t.failed]


def as_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return bytes.fromhex(v.removeprefix("0x"))
    return bytes(v)


def as_hex(v: Any) -> str:
    return "0x" + as_bytes(v).hex()


