"""Child processes of the CLI (demo workers, the demo's indexer) that must not outlive their parent."""

from __future__ import annotations

import os
import signal
import sys

#: set by a parent to its pid: the child asks the kernel for SIGTERM when that parent dies
DIE_WITH_PARENT_ENV = "TASKNET_DIE_WITH_PARENT"


def die_with_parent_if_asked() -> None:
    """When ``TASKNET_DIE_WITH_PARENT`` names our parent, get SIGTERM as soon as it dies (Linux
    ``PR_SET_PDEATHSIG``); exit at once if it died before we got here. Set in the child itself rather than
    with ``preexec_fn``, which is unsafe in a parent that runs threads."""
    parent = os.environ.pop(DIE_WITH_PARENT_ENV, None)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        sys.exit(0)  # the parent is already gone
