"""A real Slurm cluster on this machine for the Slurm executor's tests (Debian's slurm-wlm and munge).

Fixtures:
    slurm_cluster -> Cluster: ``scripts/slurm-cluster start`` for the session (munged, slurmctld and two slurmd,
                     ``vm-n1`` and ``vm-n2`` of one CPU each, 4000 MB each), stopped at the end, nothing left behind
    cluster       -> the same, checked healthy before each test and put back after it (controller up, nodes
                     resumed, no job of the test left in the queue)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.slurm.slurm_helpers import SCRIPT, Cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.fail("Slurm is not installed; run scripts/setup (Debian's slurm-wlm and munge)")
    if os.geteuid() != 0:
        pytest.fail("the test cluster's slurmd runs jobs as their users: run the tests as root (as CI does)")
    folder = tmp_path_factory.mktemp("slurm")
    subprocess.run([str(SCRIPT), "start", str(folder), "--nodes", "2", "--cpus", "1", "--memory", "4000"],
                   check=True, timeout=120)
    conf = folder / "slurm.conf"
    nodes = re.findall(r"^NodeName=(\S+)", conf.read_text(), re.MULTILINE)
    try:
        yield Cluster(folder, conf, nodes)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(folder)], check=False, timeout=120)
        left = subprocess.run(["pgrep", "-f", str(conf)], check=False, capture_output=True, text=True).stdout.split()
        assert not left, f"Slurm daemons left running: {left}"


@pytest.fixture
def cluster(slurm_cluster: Cluster) -> Iterator[Cluster]:
    c = slurm_cluster
    yield c
    c.script("ctld", "start")
    mine = [j["id"] for j in c.jobs() if j["state"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")]
    if mine:
        c.run("scancel", *mine, check=False)
    if any(s != "idle" for s in c.node_states()):
        c.set_nodes("resume", check=False)
    deadline = time.monotonic() + 30
    while any(s != "idle" for s in c.node_states()):
        if time.monotonic() > deadline:
            raise AssertionError("the test cluster's nodes did not come back idle:\n" + c.run("sinfo", "-N"))
        time.sleep(0.2)
