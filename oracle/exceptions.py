"""Exceptions raised by the oracle package (chain, IPFS, artifacts, requester SDK).

Hierarchy::

    TasknetError
    ├── ArtifactError            a compiled contract artifact is missing or stale
    ├── ChainError               the JSON-RPC endpoint misbehaves
    │   ├── RpcUnavailable       retryable: the node cannot be reached
    │   └── TransactionReverted  fatal: the contract refused; carries the decoded custom error
    ├── IpfsError                the kubo RPC API misbehaves
    │   ├── IpfsUnavailable      retryable: the daemon cannot be reached
    │   ├── IpfsOffline          the daemon runs offline: no other node can be reached through it
    │   ├── ContentNotFound      the CID cannot be fetched
    │   ├── ContentTooLarge      the content exceeds the caller's size cap
    │   └── ContentNotJson       content that should be a JSON document is not
    ├── IntegrityError           content does not match its CID, digest or checksum
    ├── ArchiveError             a result archive cannot be packed, unpacked, encrypted or decrypted
    │   └── UnsafeArchive        an archive escapes its folder, holds links/devices or unsafe names
    ├── DevnetError              the embedded devnet file is missing, stale or unhealthy
    └── ProfileError             a network profile is missing, invalid, or disagrees with the network

Every message says what happened, the value involved, and what to do about it.
"""

from __future__ import annotations

from typing import Any


class TasknetError(Exception):
    """Base class of every error Tasknet raises on purpose."""


class ArtifactError(TasknetError):
    """A compiled contract artifact is missing, unreadable or stale."""


class ChainError(TasknetError):
    """The chain's JSON-RPC endpoint failed or answered unexpectedly."""


class RpcUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached (retryable)."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; ``error_name`` and ``error_args`` hold the decoded custom error."""

    def __init__(self, message: str, *, error_name: str | None = None,
                 error_args: dict[str, Any] | None = None, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args or {}
        self.tx_hash = tx_hash


class IpfsError(TasknetError):
    """The IPFS (kubo RPC) endpoint failed or answered unexpectedly."""


class IpfsUnavailable(IpfsError):
    """The kubo RPC API cannot be reached (retryable)."""


class IpfsOffline(IpfsError):
    """The kubo node runs offline: it cannot exchange content with other nodes."""


class ContentNotFound(IpfsError):
    """A CID could not be fetched within the timeout."""


class ContentTooLarge(IpfsError):
    """Content exceeds the size cap the caller set."""


class ContentNotJson(IpfsError):
    """Content that should be a JSON document is not valid JSON."""


class IntegrityError(TasknetError):
    """Content does not match the CID, digest or checksum it was announced with."""


class DevnetError(TasknetError):
    """The embedded devnet is missing, stale or unhealthy."""


class ProfileError(TasknetError):
    """A network profile is missing or invalid, or the network it names does not answer as it says."""


class ArchiveError(TasknetError):
    """A result archive cannot be packed, unpacked, encrypted or decrypted."""


class UnsafeArchive(ArchiveError):
    """An archive member would land outside the destination, is a link, a device, oversized, too deep, or has a
    name that is not portable (its name is escaped in the message)."""


# -- requester SDK (oracle.client) ---------------------------------------------------------------------
#
#   TasknetError
#   └── ClientError              the requester SDK refused an operation before spending anything
#       ├── InvalidJobSpec       a job description, args file or input path is wrong
#       ├── UnknownApp           no app with that id is registered
#       ├── UnknownDataset       no dataset with that id is registered
#       ├── UnknownJob           no job with that id was posted
#       ├── AccessDenied         the app or dataset does not admit this requester (or app)
#       ├── InsufficientBalance  the marketplace balance cannot cover the escrow or the withdrawal
#       ├── KeyringError         the requester's local keyring is missing a key or unreadable
#       ├── ResultNotReady       a task has no final result yet
#       ├── ResultUnavailable    a final result that no reachable IPFS node provides
#       ├── IndexerUnavailable   the indexer's API named by --indexer cannot be reached or refused the request
#       └── WaitTimeout          a job did not finish within the time given


class ClientError(TasknetError):
    """The requester SDK refused an operation (nothing was sent to the chain)."""


class InvalidJobSpec(ClientError):
    """A job description, per-task arguments file or input path is invalid."""


class UnknownApp(ClientError):
    """No app with this id is registered."""


class UnknownDataset(ClientError):
    """No dataset with this id is registered."""


class UnknownJob(ClientError):
    """No job with this id was posted on this marketplace."""


class AccessDenied(ClientError):
    """The app or dataset does not admit this requester (or this app)."""


class InsufficientBalance(ClientError):
    """The marketplace balance (or the wallet) cannot cover the amount."""


class KeyringError(ClientError):
    """The requester's local keyring has no matching private key or cannot be read."""


class ResultUnavailable(ClientError):
    """A task's result is on chain but no reachable IPFS node provides its content."""


class ResultNotReady(ClientError):
    """The task has no final result on chain yet."""


class IndexerUnavailable(ClientError):
    """The indexer's HTTP API (``--indexer URL``) cannot be reached or answered with an error."""


class WaitTimeout(ClientError):
    """The job did not finish within the time given."""
