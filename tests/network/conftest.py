"""A multi-host Tasknet network on this machine (tasknet/_testnet.py) as a fixture, and what the tests do on it.

Every testnet of a session gets its own name prefix (namespaces and interfaces ``t<hex>-…``), its own /24 of
10.77.0.0/16 that nothing else on the machine uses, and its own TASKNET_HOME, so it collides neither with a
``tasknet testnet up`` of the machine's user nor with another session. Teardown removes it (``down``) and checks
that no namespace, interface or process of it is left, also when the test failed.

Fixtures:
    net_app      -> tag of a busybox app (args, each input's size and md5, an optional sleep), built once
    shared_net   -> a testnet of the module (2 worker hosts and an indexer host)
    make_testnet -> a factory: make_testnet(hosts=N, indexer=bool, **UpOptions) -> a testnet of the test alone
What participants do on it is in net_helpers.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tasknet import _devnet
from tasknet._testnet import Testnet, UpOptions, down, free_subnet, link_exists, netns_exists, up

NET_APP = "tasknet-test/net:1"
NET_APP_SCRIPT = """#!/bin/sh
# network test app: its arguments, then each input's path, size and md5 (the dataset is ./dataset);
# 'sleep N ...' first sleeps N seconds
set -eu
[ "${1:-}" = sleep ] && sleep "$2"
echo "args: $*" > /out/result.txt
for f in $(cd /in 2>/dev/null && find . -type f | sort); do
  echo "in: $f $(wc -c < "/in/$f") $(md5sum < "/in/$f" | cut -c1-32)" >> /out/result.txt
done
"""
#: the workers of a test network: quick to poll, quick to drain at teardown
WORKER_ENV = {"TASKNET_WORKER_POLL_INTERVAL": "0.2", "TASKNET_WORKER_DRAIN_TIMEOUT": "5"}


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "network tests need root (they create network namespaces, veth pairs and a bridge)"
    if shutil.which("ip") is None:
        return "network tests need the 'ip' command (iproute2)"
    try:
        _devnet.find_ipfs()
        _devnet.find_anvil()
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return _devnet.docker_healthy()


@pytest.fixture(scope="session")
def net_app(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from oracle.images import BUSYBOX_BASE, build_app_image, build_busybox_base

    build_busybox_base(docker_client)
    ctx = tmp_path_factory.mktemp("net-app")
    (ctx / "run.sh").write_text(NET_APP_SCRIPT)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY run.sh /app/run.sh\n"
                                    'ENTRYPOINT ["/bin/sh", "/app/run.sh"]\n')
    build_app_image(docker_client, ctx, NET_APP)
    return NET_APP


@contextlib.contextmanager
def running_testnet(home: Path, *, hosts: int, indexer: bool, **opts: Any) -> Iterator[Testnet]:
    """A testnet under ``home`` (its TASKNET_HOME) with a fresh prefix and subnet; removed on exit, checked."""
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    prefix = "t" + secrets.token_hex(2)
    while netns_exists(f"{prefix}-chain") or link_exists(f"{prefix}-br0"):
        prefix = "t" + secrets.token_hex(2)
    subnet = free_subnet(random.randint(100, 200))  # away from the default 10.77.0.0/24 of 'tasknet testnet up'
    state = home / "testnet" / "testnet.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKNET_HOME", str(home))
        worker_env = {**WORKER_ENV, **opts.pop("worker_env", {})}
        tn = up(UpOptions(hosts=hosts, indexer=indexer, subnet=subnet, prefix=prefix, worker_env=worker_env, **opts),
                state)
        pids = set()
        try:
            yield tn
        finally:
            pids = {c.pid for h in tn.info.hosts.values() for c in h.processes.values() if c.pid}
            names = [(h.netns, h.veth) for h in tn.info.hosts.values()]
            bridge = tn.info.bridge
            down(state)
            left = [ns for ns, _ in names if netns_exists(ns)] + [v for _, v in names if link_exists(v)]
            left += [bridge] if link_exists(bridge) else []
            left += [f"pid {p}" for p in pids if _devnet.pid_alive(p)]
            assert not left, f"the testnet left {left} behind"


@pytest.fixture
def make_testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Testnet]]:
    """make_testnet(hosts=2, indexer=False, **options): a testnet for this test only (options: UpOptions')."""
    with contextlib.ExitStack() as stack:
        def make(hosts: int = 2, indexer: bool = False, **opts: Any) -> Testnet:
            return stack.enter_context(running_testnet(tmp_path_factory.mktemp("testnet"), hosts=hosts,
                                                       indexer=indexer, **opts))
        yield make


@pytest.fixture(scope="module")
def shared_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """A testnet shared by a module's tests: 2 worker hosts and an indexer host."""
    with running_testnet(tmp_path_factory.mktemp("testnet-shared"), hosts=2, indexer=True) as tn:
        yield tn
