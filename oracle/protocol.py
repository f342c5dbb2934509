"""The Python side of the marketplace protocol (see ``contracts/PROTOCOL.md``): task ids, commitments, EIP-712.

Pure functions: nothing here talks to a node. The worker daemon, the relayer and the requester SDK build the
exact bytes the ``Marketplace`` contract checks::

    tid = task_id(job_id, 7)
    c = commitment(tid, result_digest, salt, worker.address)           # for commit()
    domain = Eip712Domain(chain_id=31337, verifying_contract=market)
    sig = sign_results(worker, domain, start, first, digests, cids)    # for relayResults()

Every hash here is tested against the contract's own (``commitmentOf``, ``hashCommit``, ``hashReveal``,
``hashResults``) on random inputs.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, NewType, TypedDict

from eth_abi.abi import encode as abi_encode
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict

#: EIP-712 domain name and version of the marketplace.
EIP712_NAME = "Tasknet Marketplace"
EIP712_VERSION = "1"

#: Bits of the ``archMask`` of workers and jobs (a job with mask 0 runs anywhere).
ARCH_AMD64 = 1 << 0
ARCH_ARM64 = 1 << 1
ARCH_RISCV64 = 1 << 2
ARCH_386 = 1 << 3
ARCH_ARM = 1 << 4
#: Bit 7 of a job's ``archMask`` is no architecture: it asks for homogeneous redundancy (every replica of a task
#: from one platform class, see :func:`platform_class_bytes` and PROTOCOL.md).
ARCH_HOMOGENEOUS = 1 << 7
#: The architecture bits of an ``archMask``.
ARCH_BITS_MASK = ARCH_HOMOGENEOUS - 1

#: A platform class tag: what a worker declares with ``setPlatformClass`` (architecture plus a tag, e.g.
#: ``amd64-avx2``, ``cuda-sm90``): lowercase ASCII letters, digits, ``.``, ``_``, ``-``; 1 to 32 characters.
PLATFORM_CLASS_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"


def platform_class_bytes(tag: str) -> bytes:
    """A platform class tag -> the ``bytes32`` the chain stores (ASCII, left-aligned, zero-padded; "" -> 0)."""
    raw = tag.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"platform class {tag!r} is {len(raw)} bytes long; at most 32 fit on chain")
    return raw.ljust(32, b"\0")


def platform_class_name(value: bytes | str) -> str:
    """The chain's ``bytes32`` platform class (bytes or 0x-hex) -> its tag ("" when none)."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else value
    return raw.rstrip(b"\0").decode("ascii", errors="replace")

#: A job's id on chain (``JobPosted.jobId``).
JobId = NewType("JobId", int)
#: A task's id on chain: ``(job id << 32) | index`` (see :func:`task_id`).
TaskId = NewType("TaskId", int)

#: Bits of a task's index inside its task id.
TASK_INDEX_BITS = 32
_INDEX_MASK = (1 << TASK_INDEX_BITS) - 1

COMMIT_TYPES: dict[str, list[dict[str, str]]] = {
    "Commit": [{"name": "taskId", "type": "uint256"}, {"name": "commitment", "type": "bytes32"}],
}
REVEAL_TYPES: dict[str, list[dict[str, str]]] = {
    "Reveal": [
        {"name": "taskId", "type": "uint256"},
        {"name": "resultDigest", "type": "bytes32"},
        {"name": "salt", "type": "bytes32"},
        {"name": "resultCID", "type": "string"},
        {"name": "callbackData", "type": "bytes"},
    ],
}
RESULTS_TYPES: dict[str, list[dict[str, str]]] = {
    "Results": [
        {"name": "startTaskId", "type": "uint256"},
        {"name": "firstTaskId", "type": "uint256"},
        {"name": "resultDigests", "type": "bytes32[]"},
        {"name": "resultCIDs", "type": "string[]"},
        {"name": "callbackData", "type": "bytes[]"},
    ],
}


class Eip712DomainFields(TypedDict):
    """The ``domain`` of EIP-712 typed data (the JSON eth-account encodes)."""

    name: str
    version: str
    chainId: int
    verifyingContract: str


class Eip712Domain(BaseModel):
    """The marketplace's EIP-712 domain: name and version are fixed, the chain and the contract are not."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    verifying_contract: str
    name: str = EIP712_NAME
    version: str = EIP712_VERSION

    def as_dict(self) -> Eip712DomainFields:
        """The domain as EIP-712 typed data names it."""
        return {"name": self.name, "version": self.version, "chainId": self.chain_id,
                "verifyingContract": to_checksum_address(self.verifying_contract)}

    def separator(self) -> bytes:
        """``keccak256(abi.encode(TYPE_HASH, keccak(name), keccak(version), chainId, verifyingContract))``."""
        type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
        return keccak(abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [type_hash, keccak(text=self.name), keccak(text=self.version), self.chain_id,
             to_checksum_address(self.verifying_contract)],
        ))


# --- task ids ------------------------------------------------------------------------------------------
def task_id(job_id: int, index: int) -> TaskId:
    """The id of task ``index`` of job ``job_id``: ``(job_id << 32) | index``."""
    if not 0 <= index <= _INDEX_MASK:
        raise ValueError(f"task index {index} is outside 0..{_INDEX_MASK}")
    if job_id < 0:
        raise ValueError(f"job id {job_id} is negative")
    return TaskId((job_id << TASK_INDEX_BITS) | index)


def split_task_id(tid: int) -> tuple[JobId, int]:
    """``(job_id, index)`` of a task id."""
    return JobId(tid >> TASK_INDEX_BITS), tid & _INDEX_MASK


def task_ids(job_id: int, first: int, count: int) -> list[TaskId]:
    """Ids of tasks ``first .. first + count - 1`` of a job."""
    return [task_id(job_id, i) for i in range(first, first + count)]


# --- commit-reveal -------------------------------------------------------------------------------------
def lane_key(start_task_id: int, count: int) -> int:
    """The key of the lane chunk of ``count`` tasks from ``start_task_id`` in ``getTask`` / ``getReplica``
    (``laneKey`` on chain): ``2^255 | count << 64 | start_task_id``."""
    return (1 << 255) | (count << 64) | (start_task_id & (2**64 - 1))


def lane_root(commitments: Sequence[bytes]) -> bytes:
    """The root a lane commits (``commitLane``) and a credible lease commits (``commitRange``): keccak256 of its
    tasks' per-task commitments, packed in task order."""
    return keccak(b"".join(commitments))


def range_seal(root: bytes, commit_block: int) -> bytes:
    """What the contract keeps of a credible lease's commitment (``getRangeCommit``): ``keccak256(abi.encode(root,
    commitBlock))``, the root of its ``commitRange`` and the block that commit landed in."""
    return keccak(abi_encode(["bytes32", "uint256"], [root, commit_block]))


def _b32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else value
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def new_salt() -> bytes:
    """32 random bytes for a commitment (keep it until the reveal: the worker's journal does)."""
    return secrets.token_bytes(32)


def commitment(tid: int, result_digest: bytes | str, salt: bytes | str, worker: str) -> bytes:
    """``keccak256(abi.encode(taskId, resultDigest, salt, worker))``: what a replica commits."""
    return keccak(abi_encode(["uint256", "bytes32", "bytes32", "address"],
                             [tid, _b32(result_digest), _b32(salt), to_checksum_address(worker)]))


# --- EIP-712 -------------------------------------------------------------------------------------------
def _message(domain: Eip712Domain, types: dict[str, list[dict[str, str]]], primary: str,
             message: dict[str, Any]) -> SignableMessage:
    return encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}], **types},
        "primaryType": primary,
        "domain": domain.as_dict(),
        "message": message,
    })


def _digest(msg: SignableMessage) -> bytes:
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def commit_message(domain: Eip712Domain, tid: int, commitment_: bytes | str) -> SignableMessage:
    """The EIP-712 ``Commit(uint256 taskId,bytes32 commitment)`` message."""
    return _message(domain, COMMIT_TYPES, "Commit", {"taskId": tid, "commitment": _b32(commitment_)})


def reveal_message(domain: Eip712Domain, tid: int, result_digest: bytes | str, salt: bytes | str,
                   result_cid: str, callback_data: bytes = b"") -> SignableMessage:
    """The EIP-712 ``Reveal(uint256 taskId,bytes32 resultDigest,bytes32 salt,string resultCID,bytes callbackData)``."""
    return _message(domain, REVEAL_TYPES, "Reveal", {
        "taskId": tid, "resultDigest": _b32(result_digest), "salt": _b32(salt), "resultCID": result_cid,
        "callbackData": bytes(callback_data),
    })


def results_message(domain: Eip712Domain, start_task_id: int, first_task_id: int,
                    result_digests: Sequence[bytes | str], result_cids: Sequence[str],
                    callback_data: Sequence[bytes] = ()) -> SignableMessage:
    """The EIP-712 ``Results(uint256 startTaskId,uint256 firstTaskId,bytes32[] resultDigests,string[] resultCIDs,
    bytes[] callbackData)`` message (``callback_data`` empty, or one entry per result)."""
    return _message(domain, RESULTS_TYPES, "Results", {
        "startTaskId": start_task_id, "firstTaskId": first_task_id,
        "resultDigests": [_b32(d) for d in result_digests], "resultCIDs": list(result_cids),
        "callbackData": [bytes(c) for c in callback_data],
    })


def hash_commit(domain: Eip712Domain, tid: int, commitment_: bytes | str) -> bytes:
    """The 32-byte EIP-712 digest of a ``Commit`` (equals the contract's ``hashCommit``)."""
    return _digest(commit_message(domain, tid, commitment_))


def hash_reveal(domain: Eip712Domain, tid: int, result_digest: bytes | str, salt: bytes | str, result_cid: str,
                callback_data: bytes = b"") -> bytes:
    """The 32-byte EIP-712 digest of a ``Reveal`` (equals the contract's ``hashReveal``)."""
    return _digest(reveal_message(domain, tid, result_digest, salt, result_cid, callback_data))


def hash_results(domain: Eip712Domain, start_task_id: int, first_task_id: int,
                 result_digests: Sequence[bytes | str], result_cids: Sequence[str],
                 callback_data: Sequence[bytes] = ()) -> bytes:
    """The 32-byte EIP-712 digest of a ``Results`` batch (equals the contract's ``hashResults``)."""
    return _digest(results_message(domain, start_task_id, first_task_id, result_digests, result_cids,
                                   callback_data))


def _sign(account: LocalAccount, msg: SignableMessage) -> bytes:
    return bytes(account.sign_message(msg).signature)


def sign_commit(account: LocalAccount, domain: Eip712Domain, tid: int, commitment_: bytes | str) -> bytes:
    """65-byte signature of a ``Commit`` by ``account`` (for ``relayCommits``)."""
    return _sign(account, commit_message(domain, tid, commitment_))


def sign_reveal(account: LocalAccount, domain: Eip712Domain, tid: int, result_digest: bytes | str,
                salt: bytes | str, result_cid: str, callback_data: bytes = b"") -> bytes:
    """65-byte signature of a ``Reveal`` by ``account`` (for ``relayReveals``)."""
    return _sign(account, reveal_message(domain, tid, result_digest, salt, result_cid, callback_data))


def sign_results(account: LocalAccount, domain: Eip712Domain, start_task_id: int, first_task_id: int,
                 result_digests: Sequence[bytes | str], result_cids: Sequence[str],
                 callback_data: Sequence[bytes] = ()) -> bytes:
    """65-byte signature of a ``Results`` batch by ``account`` (for ``relayResults``)."""
    return _sign(account, results_message(domain, start_task_id, first_task_id, result_digests, result_cids,
                                          callback_data))


def results_batch(account: LocalAccount, domain: Eip712Domain, start_task_id: int, first_task_id: int,
                  result_digests: Sequence[bytes | str], result_cids: Sequence[str],
                  callback_data: Sequence[bytes] = ()) -> tuple[int, int, list[bytes], list[str], list[bytes], bytes]:
    """A signed ``ResultBatch`` tuple, ready for ``relayResults([...])``."""
    digests = [_b32(d) for d in result_digests]
    sig = sign_results(account, domain, start_task_id, first_task_id, digests, result_cids, callback_data)
    return (start_task_id, first_task_id, digests, list(result_cids), [bytes(c) for c in callback_data], sig)
