"""The manifest ``tasknet result get`` keeps in its output folder, so that a second run resumes where the first
stopped: one JSON line per task verified and unpacked (its digest, CID, files and bytes), appended and fsynced as
each task lands. A task is skipped when the manifest holds the digest the chain finalized for it and its folder
is there; a torn last line (a crash while writing it) is ignored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from ..protocol import task_id
from ..status import read_status
from ._models import TaskResult

MANIFEST = ".tasknet-results.jsonl"


class ManifestEntry(BaseModel):
    """One line of the manifest: a task's result verified and unpacked in ``dest/<index>``."""

    job_id: int
    marketplace: str
    index: int
    digest: str
    cid: str
    source: Literal["archive", "file", "canonical"]
    files: int = 0
    bytes: int = 0


class ResultManifest:
    """Verified results of one job in the folder ``dest``."""

    def __init__(self, dest: Path, job_id: int, marketplace: str) -> None:
        self.dest = dest
        self.path = dest / MANIFEST
        self.job_id = job_id
        self.marketplace = marketplace.lower()
        self.entries: dict[int, ManifestEntry] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = ManifestEntry.model_validate_json(line)
                except ValidationError:
                    continue  # a line torn by a crash, or not a manifest entry
                if entry.job_id == self.job_id and entry.marketplace.lower() == self.marketplace:
                    self.entries[entry.index] = entry

    def verified(self, index: int, digest: str) -> bool:
        """True when an earlier run verified ``digest`` for task ``index`` and its folder is still there."""
        entry = self.entries.get(index)
        return entry is not None and entry.digest == digest and (self.dest / str(index)).is_dir()

    def resumed(self, index: int) -> TaskResult:
        """The result an earlier run verified, read back from the manifest and the task's ``logs/status.txt``."""
        e = self.entries[index]
        path = self.dest / str(index)
        st = read_status(path / "logs")
        return TaskResult(index=index, task_id=task_id(self.job_id, index), digest=e.digest, cid=e.cid,
                          verified=True, digest_source=e.source, path=path, files=e.files,
                          bytes=e.bytes, outcome="ok" if st.ok else "failed", reason=st.reason,
                          exit_code=st.exit_code, error=st.error, skipped=st.skipped, resumed=True)

    def add(self, result: TaskResult) -> None:
        """Record a result verified and unpacked now (appended, flushed and fsynced)."""
        entry = ManifestEntry(job_id=self.job_id, marketplace=self.marketplace, index=result.index,
                              digest=result.digest, cid=result.cid, source=result.digest_source, files=result.files,
                              bytes=result.bytes)
        self.entries[result.index] = entry
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(entry.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
