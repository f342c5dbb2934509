"""What workers hand the relayer: EIP-712 signed results, commits and reveals, and a message's status.

The field names are the relayer's HTTP API (``worker._relay`` posts them as JSON); ``as_tuple`` gives the struct
the marketplace's ``relayResults`` / ``relayCommits`` / ``relayReveals`` take.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

Kind = Literal["results", "commits", "reveals"]

#: the marketplace function that lands a batch of each kind
FUNCTIONS: dict[str, str] = {"results": "relayResults", "commits": "relayCommits", "reveals": "relayReveals"}


def _hex_bytes(value: str, size: int | None = None) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if size is not None and len(raw) != size:
        raise ValueError(f"expected {size} bytes of hex, got {len(raw)}")
    return raw


def _hex_of(size: int | None) -> AfterValidator:
    def check(value: str) -> str:
        _hex_bytes(value, size)
        return value
    return AfterValidator(check)


#: hex strings (``0x`` optional) checked when a message arrives, so a malformed one is refused (HTTP 422), never
#: taken in to fail later
Hex32 = Annotated[str, _hex_of(32)]
Signature = Annotated[str, _hex_of(65)]
HexData = Annotated[str, _hex_of(None)]


class SignedMessage(BaseModel):
    """A worker-signed message; ``as_tuple`` is its ABI struct."""

    def as_tuple(self) -> tuple[Any, ...]:
        raise NotImplementedError


class SignedResults(SignedMessage):
    """Results for the next tasks of an R = 1 lease, signed by its holder (EIP-712 ``Results``)."""

    start_task_id: int = Field(ge=0)
    first_task_id: int = Field(ge=0)
    result_digests: list[Hex32] = Field(min_length=1, max_length=256)
    result_cids: list[str] = Field(min_length=1, max_length=256)
    callback_data: list[HexData] = Field(default_factory=list)
    signature: Signature

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.start_task_id, self.first_task_id, [_hex_bytes(d, 32) for d in self.result_digests],
                self.result_cids, [_hex_bytes(c) for c in self.callback_data], _hex_bytes(self.signature, 65))


class SignedCommit(SignedMessage):
    """A commitment signed by the replica's worker (EIP-712 ``Commit``)."""

    task_id: int = Field(ge=0)
    commitment: Hex32
    signature: Signature

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.commitment, 32), _hex_bytes(self.signature, 65))


class SignedReveal(SignedMessage):
    """A reveal signed by the replica's worker (EIP-712 ``Reveal``)."""

    task_id: int = Field(ge=0)
    result_digest: Hex32
    salt: Hex32
    result_cid: str
    callback_data: HexData = "0x"
    signature: Signature

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.task_id, _hex_bytes(self.result_digest, 32), _hex_bytes(self.salt, 32), self.result_cid,
                _hex_bytes(self.callback_data), _hex_bytes(self.signature, 65))


#: the message model of each kind
MODELS: dict[str, type[SignedMessage]] = {"results": SignedResults, "commits": SignedCommit,
                                          "reveals": SignedReveal}


class RelayerHealth(BaseModel):
    """``GET /health``: the relayer's account, its queue, and its counters since it started."""

    ok: bool
    relayer: str = Field(description="the account that sends the batched transactions")
    queued: int = Field(description="messages waiting for the next batch")
    accepted: int
    rejected: int
    sent: int = Field(description="messages landed on chain")
    transactions: int
    gas: int = Field(description="gas the relayer's transactions used")


class MessageStatus(BaseModel):
    """Where an accepted message stands: queued, sent (in transaction ``tx``) or rejected (``error``, ``reason``)."""

    id: int
    kind: str
    status: Literal["queued", "sent", "rejected"]
    tx: str | None = None
    error: str | None = None
    reason: str | None = None
