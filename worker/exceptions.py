"""Exceptions raised by the worker's execution core (sandbox, input cache, result archive).

Hierarchy (``TasknetError`` is :class:`oracle.exceptions.TasknetError`)::

    TasknetError
    ├── ArchiveError, UnsafeArchive  (from oracle.exceptions: the archive code is shared with requesters)
    └── WorkerError                  base of every error the worker raises on purpose
        ├── StateDirInUse            another worker process runs on the same state folder
        ├── CannotClaim              banned, or staked below the minimum: the daemon stops (on_ban = exit)
        ├── TaskPaused               the daemon stopped the task to resume it later (policy, SIGTERM): not an error
        ├── EnvironmentFailure       this worker's environment failed the task: its claim is given back
        │   ├── SlurmRejected        the cluster refused the task's job (over the partition's limits)
        │   └── GpuUnavailable       the task's GPUs are not free here, or the engine could not give them
        ├── SandboxError             the Docker engine failed to run a task (not the app's fault; retryable)
        │   └── SlurmUnavailable     the cluster's controller (slurmctld) does not answer (retryable)
        └── InputError               an input cannot be used; the task fails with this message
            ├── InputUriInvalid      the URI's scheme or checksum fragment is malformed
            ├── InputUnavailable     unknown CID, HTTP error or timeout while fetching (maybe transient)
            ├── InputTooLarge        the input exceeds the per-input size cap or the whole cache
            ├── InputsDocumentInvalid the job's inputs document is malformed (the same for every worker)
            └── InputCorrupt         the bytes do not match the CID or sha256 (also an IntegrityError)

An app that misbehaves inside its container raises nothing: :meth:`worker.Sandbox.run` returns a
:class:`worker.RunResult` whose ``reason`` says what happened (timeout, oom, pids, output-too-large,
output-too-many-files, output-too-deep, output-unsafe, ...), and the pipeline publishes it as a failure result
(``missing-deterministic-file`` too). Whatever the app wrote, ArchiveError and UnsafeArchive come only from a
requester unpacking a hostile archive, never from a worker copying an output: a raised error makes the worker
retry the task, and an app must not be able to make every honest worker retry until its claim expires.
SandboxError is kept for the engine's and the host's own failures.

Every message says what happened, the value involved, and what to do about it.
"""

from __future__ import annotations

from oracle.exceptions import ArchiveError, IntegrityError, TasknetError, UnsafeArchive

__all__ = [
    "ArchiveError", "CannotClaim", "EnvironmentFailure", "GpuUnavailable", "InputCorrupt", "InputError", "InputTooLarge", "InputUnavailable", "InputUriInvalid",
    "InputsDocumentInvalid",
    "SandboxError", "SlurmRejected", "SlurmUnavailable", "StateDirInUse", "TaskPaused", "UnsafeArchive",
    "WorkerError",
]


class WorkerError(TasknetError):
    """Base class of the worker's errors."""


class CannotClaim(WorkerError):
    """The marketplace will not let this worker claim: it is banned, or its stake is below the minimum."""


class EnvironmentFailure(WorkerError):
    """This worker's own environment cannot run the task (an input its node cannot reach, its engine or disk, its
    own caps): not the task's answer. The claim is given back (``abandon``) and the job avoided for a while."""


class TaskPaused(WorkerError):
    """The daemon stopped the task's container (the policy closed, or the worker is stopping) to resume it later
    from its checkpoint folder: the run's outcome is not published. ``run_seconds``: how long it ran this time."""

    def __init__(self, reason: str, run_seconds: float) -> None:
        super().__init__(f"task paused: {reason}")
        self.reason, self.run_seconds = reason, run_seconds


class StateDirInUse(WorkerError):
    """Another worker process holds the state folder."""


class SandboxError(WorkerError):
    """The Docker engine could not create, start, inspect or clean up a task's containers."""


class SlurmRejected(EnvironmentFailure):
    """The Slurm cluster refused the task's batch job (its cores, memory or time exceed the partition's limits, an
    account or QOS refused): the claim is given back."""


class SlurmUnavailable(SandboxError):
    """The Slurm commands cannot reach the cluster's controller (slurmctld down or unreachable): claims pause."""


class GpuUnavailable(EnvironmentFailure):
    """The task's GPUs cannot be given to it here: fewer are free than it asks for, or the engine refused the
    container's device request (the driver or the NVIDIA container runtime gone, a device that disappeared). The
    claim is given back, not failed: another worker's GPUs may run it."""

    def __init__(self, message: str, *, engine: bool = False) -> None:
        super().__init__(message)
        #: the engine refused the device request (the machine's GPUs changed): the worker detects them again
        self.engine = engine


class InputError(WorkerError):
    """An input of a task cannot be fetched or used."""


class InputUriInvalid(InputError):
    """The input URI is not ``ipfs://CID`` or ``http(s)://…#sha256=<64 hex>``."""


class InputUnavailable(InputError):
    """The input could not be fetched (unknown CID, HTTP error, timeout)."""


class InputTooLarge(InputError):
    """The input is larger than the per-input cap or than the whole cache."""


class InputsDocumentInvalid(InputError):
    """The job's inputs document is not valid (malformed, not JSON, too large): the same for every worker."""


class InputCorrupt(InputError, IntegrityError):
    """The fetched bytes do not match the announced CID or sha256."""
