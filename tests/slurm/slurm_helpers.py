"""The test cluster as the Slurm tests drive it (see tests/slurm/conftest.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-cluster"
#: squeue states of a job that has not ended yet
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})


@dataclasses.dataclass
class Cluster:
    dir: Path
    conf: Path
    nodes: list[str]

    def run(self, *args: str, check: bool = True) -> str:
        """A Slurm command against this cluster; its stdout."""
        proc = subprocess.run(list(args), capture_output=True, text=True, env={**os.environ, "SLURM_CONF": str(self.conf)},
                              timeout=60, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def script(self, *args: str) -> None:
        """scripts/slurm-cluster ARGS DIR (e.g. ``ctld stop``)."""
        subprocess.run([str(SCRIPT), *args, str(self.dir)], check=True, timeout=120)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller knows (finished ones too): id, name, state, node."""
        out = self.run("squeue", "-h", "-t", "all", "-O", "JobID:|,Name:|,State:|,NodeList:|")
        return [dict(zip(("id", "name", "state", "node"), (p.strip() for p in line.split("|")), strict=False))
                for line in out.splitlines() if line.strip()]

    def task_jobs(self, owner: str, job_id: int) -> dict[int, list[dict[str, str]]]:
        """The Slurm jobs of each task of marketplace job ``job_id`` run by the worker labelled ``owner``."""
        prefix = f"tasknet-{hashlib.sha256(owner.encode()).hexdigest()[:10]}-{job_id}-"
        out: dict[int, list[dict[str, str]]] = {}
        for job in self.jobs():
            m = re.fullmatch(re.escape(prefix) + r"(\d+)-[0-9a-f]{12}", job["name"])
            if m:
                out.setdefault(int(m.group(1)), []).append(job)
        return out

    def states(self, ids: list[str]) -> list[str]:
        by_id = {j["id"]: j["state"] for j in self.jobs()}
        return [by_id.get(i, "?") for i in ids]

    def settled_states(self, ids: list[str], timeout: float = 30.0) -> list[str]:
        """The jobs' states once none is still running or COMPLETING: the executor sees a job end when its script
        has written ``result.env``, a moment before the script exits, and slurmd's epilog and accounting take
        another; on a loaded machine squeue may still say RUNNING then."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(ids)
            if not set(states) & LIVE_STATES or time.monotonic() > deadline:
                return states
            time.sleep(0.2)

    def accounted(self, ids: list[str]) -> dict[str, str]:
        """The jobs' final states in the cluster's job completion log (``sacct -c``): what outlives squeue."""
        out = self.run("sacct", "-c", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(ids))
        return dict(line.split("|")[:2] for line in out.splitlines() if "|" in line)

    def forget(self, ids: list[str], timeout: float = 120.0) -> None:
        """Make the controller forget the (finished) jobs, as it does MinJobAge after they end: MinJobAge is set to
        2 s until squeue no longer lists them (the controller purges them within seconds), then put back."""
        text = self.conf.read_text()
        self.conf.write_text(re.sub(r"^MinJobAge=\d+$", "MinJobAge=2", text, flags=re.MULTILINE))
        try:
            self.run("scontrol", "reconfigure")
            deadline = time.monotonic() + timeout
            while set(ids) & {j["id"] for j in self.jobs()}:
                assert time.monotonic() < deadline, f"the controller did not forget jobs {ids}: {self.jobs()}"
                time.sleep(0.5)
        finally:
            self.conf.write_text(text)
            self.run("scontrol", "reconfigure")

    def set_nodes(self, state: str, check: bool = True) -> None:
        """``scontrol update nodename=… state=…`` for every node (drain needs a reason)."""
        extra = ["reason=tasknet-test"] if state == "drain" else []
        self.run("scontrol", "update", f"nodename={','.join(self.nodes)}", f"state={state}", *extra, check=check)

    def node_states(self) -> list[str]:
        return self.run("sinfo", "-h", "-N", "-o", "%T").split()
