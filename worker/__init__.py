"""The resource provider's worker: confined execution, input cache, canonical results (and the daemon on top)."""

from oracle.archive import (
    PackedResult,
    decrypt_file,
    decrypt_with,
    encrypt_file,
    encrypt_for,
    generate_keypair,
    pack_result,
    sha256_file,
    unpack_result,
)

from ._cache import CachedInput, CacheStats, InputCache, cache_key
from ._daemon import Worker
from ._journal import Journal, Step, TaskRecord
from ._sandbox import Limits, Reason, RunResult, RunSpec, Sandbox, remove_sandbox_leftovers, sandbox_owner
from ._settings import WorkerSettings
from .exceptions import WorkerError

__all__ = [
    "CacheStats", "CachedInput", "InputCache", "Journal", "Limits", "PackedResult", "Reason", "RunResult", "RunSpec",
    "Sandbox", "Step", "TaskRecord", "Worker", "WorkerError", "WorkerSettings", "cache_key", "decrypt_file", "decrypt_with", "encrypt_file", "encrypt_for",
    "generate_keypair", "pack_result", "remove_sandbox_leftovers", "sandbox_owner", "sha256_file",
    "unpack_result",
]
