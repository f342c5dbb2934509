"""What workers hand the relayer: EIP-712 signed results, commits and reveals, and a message's status.

The field names are the relayer's HTTP API (``worker._relay`` posts them as JSON); ``as_tuple`` gives the struct
the marketplace's ``relayResults`` / ``relayCommits`` / ``relayReveals`` take.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

Kind = Literal["results", "commits", "reveals"]

#: the marketplace function that lands a batch of each kind
FUNCTIONS: dict[str, str] = {"results": "relayResults", "commits": "relayCommits", "reveals": "relayReveals"}


def _hex_bytes(value: str, size: int | None = None) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if size is not None and len(raw) != size:
        raise ValueError(f"expected {size} bytes of hex, got {len(raw)}")
    return raw


class SignedMessage(BaseModel):
    """A worker-signed message; ``as_tuple`` is its ABI struct."""

    def as_tuple(self) -> tuple[Any, ...]:
        raise NotImplementedError


class SignedResults(SignedMessage):
    """Results for the next tasks of an R = 1 lease, signed by its holder (EIP-712 ``Results``)."""

    start_task_id: int = Field(ge=0)
    first_task_id: int = Field(ge=0)
    result_digests: list[str] = Field(min_length=1, max_length=256)
    result_cids: list[str] = Field(min_length=1, max_length=256)
    callback_data: list[str] = Field(default_factory=list)
    signature: str

    @field_validator("result_digests")
    @classmethod
    def _digests(cls, v: list[str]) -> list[str]:
        for d in v:
            _hex_bytes(d, 32)
        return v

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.start_task_id, self.first_task_id, [_hex_bytes(d, 32) for d in self.result_digests],
                self.result_cids, [_hex_bytes(c) for c in self.callback_data], _hex_bytes(self.signature, 65))


class SignedCommit(SignedMessage):
    """A commitment signed by the replica's worker (EIP-712 ``Commit``)."""

    task_id: int = Field(ge=0)
    commitment: str
    signature: str

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.commitment, 32), _hex_bytes(self.signature, 65))


class SignedReveal(SignedMessage):
    """A reveal signed by the replica's worker (EIP-712 ``Reveal``)."""

    task_id: int = Field(ge=0)
    result_digest: str
    salt: str
    result_cid: str
    callback_data: str = "0x"
    signature: str

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.result_digest, 32), _hex_bytes(self.salt, 32), self.result_cid,
                _hex_bytes(self.callback_data), _hex_bytes(self.signature, 65))


#: the message model of each kind
MODELS: dict[str, type[SignedMessage]] = {"results": SignedResults, "commits": SignedCommit,
                                          "reveals": SignedReveal}


class MessageStatus(BaseModel):
    """Where an accepted message stands: queued, sent (in transaction ``tx``) or rejected (``error``, ``reason``)."""

    id: int
    kind: str
    status: Literal["queued", "sent", "rejected"]
    tx: str | None = None
    error: str | None = None
    reason: str | None = None
