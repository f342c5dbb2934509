"""The relayer's HTTP API (FastAPI): intake of signed messages, their status, health."""

from __future__ import annotations

from typing import Any

from oracle.exceptions import TasknetError

from ._messages import MessageStatus, RelayerHealth, SignedCommit, SignedMessage, SignedResults, SignedReveal
from ._service import Relayer
from .exceptions import RelayRejected


def create_app(relayer: Relayer) -> Any:
    """The relayer's HTTP API: ``POST /v1/{results,commits,reveals}``, ``GET /v1/messages/{id}``, ``/health``."""
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="Tasknet relayer", version="1",
                  description="Lands worker-signed results, commits and reveals in batched transactions.")

    def _intake(kind: str, message: SignedMessage) -> MessageStatus:
        try:
            return relayer.submit(kind, message)
        except RelayRejected as exc:
            raise HTTPException(422, detail={"error": exc.error_name, "message": str(exc)}) from exc
        except TasknetError as exc:
            raise HTTPException(503, detail={"error": type(exc).__name__, "message": str(exc)}) from exc

    @app.post("/v1/results", status_code=202, response_model=MessageStatus)
    def post_results(message: SignedResults) -> MessageStatus:
        return _intake("results", message)

    @app.post("/v1/commits", status_code=202, response_model=MessageStatus)
    def post_commit(message: SignedCommit) -> MessageStatus:
        return _intake("commits", message)

    @app.post("/v1/reveals", status_code=202, response_model=MessageStatus)
    def post_reveal(message: SignedReveal) -> MessageStatus:
        return _intake("reveals", message)

    @app.get("/v1/messages/{mid}", response_model=MessageStatus)
    def message_status(mid: int) -> MessageStatus:
        status = relayer.statuses.get(mid)
        if status is None:
            raise HTTPException(404, detail=f"no message {mid} (ids restart when the relayer restarts)")
        return status

    @app.get("/health", response_model=RelayerHealth)
    def health() -> RelayerHealth:
        return RelayerHealth.model_validate({"ok": True, "relayer": relayer.account.address,
                                             "queued": relayer.queued(), **relayer.stats})

    return app
