"""``client.results``: a job's results, downloaded from IPFS, decrypted, checked against the digests the chain
finalized, unpacked; or checked only.

::

    results = c.results.download(job.job_id, "out/")   # out/<index>/output and out/<index>/logs
    assert all(r.verified for r in c.results.verify(job.job_id))

The chain is the reference: a result whose content does not hash to the finalized digest raises
:class:`~oracle.exceptions.IntegrityError`, never reaches ``dest``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..archive import decrypt_file, sha256_file, unpack_result
from ..canonical import canonical_digest, is_canonical_layout
from ..exceptions import (
    ClientError,
    ContentNotFound,
    IntegrityError,
    ResultNotReady,
    ResultUnavailable,
    TasknetError,
)
from ..protocol import task_id
from ..status import read_status
from . import _reads as reads
from ._manifest import ResultManifest
from ._models import AppInfo, TaskResult
from ._scan import RESULT_EVENTS, JobResults

if TYPE_CHECKING:
    from ._client import Client

ByteProgress = Callable[[int], None]
TaskProgress = Callable[[TaskResult], None]
#: results downloaded at once by :meth:`Results.download` (each is an IPFS fetch, a decryption, an unpacking)
PARALLEL_DOWNLOADS = 4


class Results:
    """Finished tasks' results, verified against the chain."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def download(self, job_id: int, dest: str | Path | None, *, indexes: Sequence[int] | None = None,
                progress: ByteProgress | None = None, max_bytes: int = 4 << 30, on_task: TaskProgress | None = None,
                on_total: Callable[[int], None] | None = None, parallel: int = PARALLEL_DOWNLOADS
                ) -> list[TaskResult]:
        """Download each finished task's result from IPFS, decrypt it (keyring), check it against the digest
        the chain finalized, and unpack it to ``dest/<index>/`` (``output/`` and ``logs/``).

        The job's results are found by one pass over its result events (no call per task); ``parallel`` results
        are fetched at a time. With a ``dest``, each verified result is noted in ``dest/.tasknet-results.jsonl``
        and a later call skips the tasks noted there with the same digest (``TaskResult.resumed``): an
        interrupted download resumes where it stopped. ``on_total`` is told how many tasks there are, ``on_task``
        is called as each is done (resumed ones included). With ``dest=None`` the results are verified only.

        Raises :class:`IntegrityError` on a mismatch and :class:`ResultNotReady` for a requested task without a
        final result (after every other requested task was fetched: those are kept and noted).
        """
        c = self._c
        v, block = reads.posted(c, job_id)
        found = JobResults.from_events(reads.events_of(c, job_id, block, RESULT_EVENTS))
        wanted = list(indexes) if indexes is not None else sorted(found.digests)
        for i in wanted:
            if not 0 <= i < v.num_tasks:
                raise ClientError(f"job {job_id} has tasks 0..{v.num_tasks - 1}; there is no task {i}")
            if i not in found.digests:
                state = reads.task_rows(c, job_id, v, block, [i])[0].state
                hint = (f"'tasknet job watch {job_id}' waits for it, 'tasknet job explain {job_id} --task {i}' says "
                        "why it is not done") if state in ("open", "claimed", "committing") else \
                    "it will never have one (its escrow was refunded)"
                raise ResultNotReady(f"task {i} of job {job_id} is {state}, with no final result; {hint}")
        folder = None if dest is None else Path(dest)
        manifest = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            manifest = ResultManifest(folder, job_id, c.market.address)
        out: dict[int, TaskResult] = {}
        todo = []
        if on_total is not None:
            on_total(len(wanted))
        for i in wanted:
            digest = found.digests[i].removeprefix("0x")
            if manifest is not None and manifest.verified(i, digest):
                out[i] = manifest.resumed(i)
                if on_task is not None:
                    on_task(out[i])
            else:
                todo.append(i)
        if todo:
            app = c.apps.get(v.app_id)
            out.update(self._fetch_all(job_id, todo, found, v.encryption_key, app, folder, manifest, progress,
                                       max_bytes, on_task, parallel))
        return [out[i] for i in wanted]

    def verify(self, job_id: int, indexes: Sequence[int] | None = None) -> list[TaskResult]:
        """Download and check results against the chain without keeping them (``download`` with no ``dest``).

        Raises :class:`IntegrityError` on a mismatch and :class:`ResultNotReady` for a task without a final
        result."""
        return self.download(job_id, None, indexes=indexes)

    def _fetch_all(self, job_id: int, todo: list[int], found: JobResults, key: str, app: AppInfo, dest: Path | None,
                   manifest: ResultManifest | None, progress: ByteProgress | None, max_bytes: int,
                   on_task: TaskProgress | None, parallel: int) -> dict[int, TaskResult]:
        """Fetch ``todo`` ``parallel`` at a time; the first failure (in task order) is raised once the fetches
        under way ended, the others are kept (and noted in the manifest)."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        out: dict[int, TaskResult] = {}
        errors: dict[int, TasknetError] = {}
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="tasknet-result") as pool:
            futures = {pool.submit(self._fetch, job_id, i, found.digests[i].removeprefix("0x"), found.cids.get(i, []),
                                   key, app, dest, progress, max_bytes): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    out[i] = fut.result()
                except TasknetError as exc:
                    errors[i] = exc
                    for other in futures:
                        other.cancel()  # those not started: a rerun resumes them
                    continue
                if manifest is not None:
                    manifest.add(out[i])
                if on_task is not None:
                    on_task(out[i])
        if errors:
            raise errors[min(errors)]
        return out

    def _fetch(self, job_id: int, index: int, digest: str, cids: list[str], encryption_key: str, app: AppInfo,
               dest: Path | None, progress: ByteProgress | None, max_bytes: int) -> TaskResult:
        c = self._c
        if not cids:
            raise ResultNotReady(f"task {index} of job {job_id} is finalized but no revealed CID matches its digest")
        errors: list[str] = []
        missing: list[str] = []
        for cid in cids:
            with tempfile.TemporaryDirectory(prefix=".tasknet-result-", dir=dest) as tmp:
                blob = Path(tmp) / "blob"
                try:
                    c.ipfs.cat_to(cid, blob, max_bytes=max_bytes, progress=progress)
                except ContentNotFound:
                    missing.append(cid)
                    continue
                archive = blob
                if encryption_key:
                    archive = Path(tmp) / "result.tar"
                    decrypt_file(blob, archive, c.keyring.private_key(encryption_key))
                unpacked = Path(tmp) / "unpacked"
                try:
                    stats = unpack_result(archive, unpacked, max_bytes=max_bytes)
                except TasknetError as exc:
                    errors.append(f"{cid}: {exc}")
                    continue
                source = self._digest_source(archive, unpacked, digest, app.deterministic_file)
                if source is None:
                    errors.append(f"{cid}: neither the archive nor {app.deterministic_file or 'a deterministic file'} "
                                  f"hashes to {digest}")
                    continue
                st = read_status(unpacked / "logs")
                target = None
                if dest is not None:
                    target = dest / str(index)
                    if target.exists():
                        shutil.rmtree(target)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(unpacked), target)
                return TaskResult(index=index, task_id=task_id(job_id, index), digest=digest, cid=cid, verified=True,
                                  digest_source=source, path=target, files=stats.files, bytes=stats.bytes,
                                  outcome="ok" if st.ok else "failed", reason=st.reason, exit_code=st.exit_code,
                                  error=st.error, skipped=st.skipped)
        if missing and not errors:
            raise ResultUnavailable(
                f"the result of task {index} of job {job_id} ({', '.join(missing)}) is provided by no IPFS node yours "
                "can reach: the worker that made it may be offline, and nobody pinned it. Connect your node to the "
                "network's peers (the profile's ipfs_peers), wait for the worker to come back, or next time watch "
                "the job with 'tasknet job watch' (it pins results as they land)")
        raise IntegrityError(f"the result of task {index} of job {job_id} does not match the digest {digest} the "
                             f"chain finalized ({'; '.join(errors)}); the content on IPFS is not what the workers "
                             "committed to — do not use it")

    @staticmethod
    def _digest_source(archive: Path, unpacked: Path, digest: str, det_file: str
                       ) -> Literal["archive", "file", "canonical"] | None:
        if sha256_file(archive) == digest:
            return "archive"
        if is_canonical_layout(unpacked):  # a canonicalised result: output/ and logs/ packed again (oracle.canonical)
            st = read_status(unpacked / "logs")
            if canonical_digest(unpacked, det_file if det_file and st.ok else None) == digest:
                return "canonical"
            return None
        if det_file:
            f = unpacked / "output" / det_file
            if f.is_file() and not f.is_symlink() and sha256_file(f) == digest:
                return "file"
        return None
