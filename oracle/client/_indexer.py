"""The few reads of an indexer's HTTP API (``tasknet indexer run``) the requester's commands use when one is
configured (``--indexer URL`` or ``TASKNET_INDEXER_URL``): a job's counters and pages of its task rows. The
indexer is a mirror that anyone may run; the chain stays the reference (``tasknet result get`` checks every
result against it, never against the indexer)."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from ..exceptions import IndexerUnavailable, UnknownJob


class _Row(BaseModel):
    """The fields of an indexer API answer the client reads (the indexer's own ``JobOut``/``TaskOut`` have more:
    ignored); token amounts come as decimal strings and are read as ints."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class IndexerJob(_Row):
    """``GET /api/jobs/{id}``: a job's counters."""

    status: Literal["open", "closed"]
    requester: str
    app_id: int
    num_tasks: int
    replication: int
    reward: int
    deadline: int
    escrow_held: int
    claimed: int
    settled: int
    finished: int
    failed: int
    cancelled: int


class IndexerTask(_Row):
    """A task row of ``GET /api/tasks``."""

    idx: int
    status: str
    worker: str | None = None
    result_digest: str | None = None
    result_cid: str | None = None


class IndexerTaskPage(_Row):
    items: list[IndexerTask]
    total: int


class IndexerApi:
    def __init__(self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        try:
            r = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise IndexerUnavailable(f"the indexer at {self.url} does not answer ({type(exc).__name__}: {exc}); "
                                     "start it ('tasknet indexer run') or leave out --indexer to read the chain"
                                     ) from exc
        if r.status_code == 404:
            raise UnknownJob(f"the indexer at {self.url} has no {path} ({r.json().get('detail', '')}); it may not "
                             "have caught up yet, or the job is on another marketplace")
        if r.status_code >= 400:
            raise IndexerUnavailable(f"the indexer at {self.url} answered {r.status_code} to GET {path}: "
                                     f"{r.text[:300]}")
        return r.json()

    def job(self, job_id: int) -> IndexerJob:
        return IndexerJob.model_validate(self._get(f"/api/jobs/{job_id}"))

    def tasks(self, job_id: int, *, status: str | None = None, limit: int = 50, offset: int = 0
              ) -> IndexerTaskPage:
        """A page of the job's task rows in task order."""
        return IndexerTaskPage.model_validate(
            self._get("/api/tasks", job_id=job_id, status=status, order="id", limit=limit, offset=offset))
