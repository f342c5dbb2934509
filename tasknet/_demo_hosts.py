"""``tasknet demo --hosts``: the main demo on a testnet of its own (tasknet/_testnet.py), one host per worker.

The story is the devnet demo's (tasknet/_demo.py): a POV-Ray animation, R = 2, a liar outvoted and slashed, a
worker killed mid-task. Here every participant is on its own host (a network namespace) with its own kubo: the
scene is added on the dataset owner's node, the job posted and the results pinned through the requester's node,
each worker daemon runs on its host and fetches from the others over bitswap, the indexer (dashboard) runs on its
host and the auditor's verifier fetches the results through that host's node. The summary shows the bytes each
host fetched and served (kubo's ``bitswap/stat`` and ``stats/bw``).

The testnet has a fresh name prefix and a free /24 of 10.77.0.0/16, its state file under
``$TASKNET_HOME/demo-hosts/``; at the end it is removed (``down``) with the hosts' folders, after their logs are
copied next to the frames, unless ``--keep``. A testnet such a run left behind (``--keep``, or a run killed with
SIGKILL) is removed when the next one starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oracle import Client, IpfsClient
from oracle.devnet import tasknet_home
from oracle.exceptions import TasknetError

from ._demo import Demo, DemoOptions, HostRow, HostsExtra, Summary, TestnetRow, WorkerView, max_concurrent
from ._testnet import INDEXER_PORT, HostInfo, Testnet, UpOptions, down, free_subnet, require_root, up

PROFILE = "demo-hosts"
#: the worker daemons drain briefly when the testnet goes down
WORKER_ENV = {"TASKNET_WORKER_DRAIN_TIMEOUT": "10"}


def state_file() -> Path:
    return tasknet_home() / "demo-hosts" / "testnet.json"


class HostWorker(WorkerView):
    """A worker daemon on its own testnet host (``Testnet.start_worker``): its log file is followed."""

    def __init__(self, host: HostInfo, kind: str) -> None:
        state = Path(host.state_dir)
        super().__init__(host.name, kind, state / "worker", state / "logs" / "worker.log")
        self.host = host
        self.pid = host.processes["worker"].pid or 0
        self._done = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        while not self.log_path.exists():
            if self._done.wait(0.1):
                return
        with self.log_path.open() as fh:
            partial = ""
            while not self._done.is_set():
                chunk = fh.readline()
                if not chunk:
                    self._done.wait(0.1)
                    continue
                partial += chunk
                if partial.endswith("\n"):
                    self.on_line(partial)
                    partial = ""

    def exited(self) -> int | None:
        """-1 once the daemon is gone (or a zombie: its status is the testnet's to collect), else None."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return -1
        return -1 if state in ("Z", "X") else None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.killed = True
        self.last = "killed (SIGKILL) mid-task"

    def stop(self) -> None:
        """Stop following the log (the daemon itself is the testnet's to stop)."""
        self._done.set()


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class HostsDemo(Demo):
    def __init__(self, opts: DemoOptions, devnet_file: Path | None, console: Console) -> None:
        super().__init__(opts, devnet_file, console)
        self.pin_results = True
        self.tn: Testnet | None = None
        self.state_file = state_file()

    @property
    def testnet(self) -> Testnet:
        if self.tn is None:
            raise TasknetError("the demo's testnet is not up")
        return self.tn

    # -- the network ----------------------------------------------------------------------------------
    def run(self) -> Summary:
        require_root("tasknet demo --hosts")
        if self.state_file.exists():
            self.say("removing the testnet a previous 'tasknet demo --hosts' left (--keep, or killed)")
            down(self.state_file)
        opts = UpOptions(hosts=self.o.workers, indexer=True, subnet=free_subnet(20), prefix="d" + secrets.token_hex(2),
                         profile=PROFILE, worker_env=WORKER_ENV, start_workers=False)
        try:
            with self.console.status("building the testnet") as status:
                self.tn = up(opts, self.state_file,
                             progress=lambda step: status.update(f"building the testnet: {step}"))
            info = self.tn.info
            self.say(f"testnet up: {len(info.hosts)} hosts on {info.subnet} (bridge {info.bridge}), each with its "
                     f"own kubo; chain {info.rpc_url}")
            self.rpc_url, self.marketplace = info.rpc_url, info.contracts["Marketplace"]
            self.deploy_block = info.deploy_block
            self.addresses = {a.role: a.address for a in info.accounts}
            return self._run()
        finally:
            self._clean_up()

    def _clean_up(self) -> None:
        """Each step runs whatever the one before did: never leave a testnet behind (unless --keep)."""
        for w in self.workers:
            w.stop()
        if self.tn is None:
            return  # up failed, and removed what it had made
        try:
            if self.o.keep:
                for host in self.tn.info.workers():
                    self.tn.stop_worker(host)
                self.say(f"the testnet stays up (--keep): dashboard {self.dashboard}; 'tasknet testnet status "
                         f"--state-file {self.state_file}', remove it with 'tasknet testnet down --state-file "
                         f"{self.state_file}'")
                return
            hosts = list(self.tn.info.hosts.values())
            removed = down(self.state_file)
            logs = self.o.out_dir.resolve() / "hosts"
            for host in hosts:
                with contextlib.suppress(OSError):
                    shutil.copytree(Path(host.state_dir) / "logs", logs / host.name, dirs_exist_ok=True)
            shutil.rmtree(self.state_file.parent, ignore_errors=True)
            self.say(f"testnet down: {len(removed)} namespaces, links and processes removed; the hosts' logs are "
                     f"in {logs}")
        finally:
            self.tn = None

    def _client(self, role: str, **kw: Any) -> Client:
        """Dev account ``role`` on its host's node: the dataset owner's, else the requester's (the app owner publishes
        its metadata there)."""
        info = self.testnet.info
        host = info.host("dataset-owner" if role == "dataset-owner" else "requester")
        return Client.connect(self.rpc_url, marketplace=self.marketplace, ipfs_api=host.ipfs_api,
                              private_key=info.account(role).private_key, deploy_block=self.deploy_block, **kw)

    def _start_indexer(self, out: Path) -> None:
        self.dashboard = self.testnet.info.host("indexer").url(INDEXER_PORT) + "/"

    def _remove_leftovers(self) -> None:
        pass  # the testnet's down (or stop_worker) removes what its workers left in the engine

    def _audit_ipfs_api(self) -> str:
        return self.testnet.info.host("indexer").ipfs_api

    def _start_workers(self, root: Path) -> None:
        tn = self.testnet
        for host, kind in zip(tn.info.workers(), self._worker_kinds(), strict=True):
            tn.start_worker(host, max_concurrent(self.o.worker_slots)
                            + (["--fault", "wrong-result"] if kind == "liar" else []))
            self.workers.append(HostWorker(host, kind))
        self.say(f"{len(self.workers)} worker daemons started, one per host: "
                 + ", ".join(f"{w.role} ({w.kind}, {tn.info.host(w.role).address})" for w in self.workers))
        for w in self.workers:
            if w.kind == "crasher":
                threading.Thread(target=self._kill_mid_task, args=(w,), daemon=True).start()

    # -- the summary --------------------------------------------------------------------------------
    def _logs(self, out: Path) -> dict[str, str]:
        info = self.testnet.info
        where = {h.name: (Path(h.state_dir) / "logs" if self.o.keep else out / "hosts" / h.name)
                 for h in info.hosts.values()}
        hosts = (Path(info.state_dir) / "<host>" / "logs") if self.o.keep else out / "hosts" / "<host>"
        logs = {"demo": out / "demo.log", "indexer": where["indexer"] / "indexer.log", "hosts": hosts}
        logs.update({w.role: where[w.role] / "worker.log" for w in self.workers})
        return {name: str(path) for name, path in logs.items()}

    def _extra_summary(self) -> HostsExtra:
        info = self.testnet.info
        rows: list[HostRow] = []
        for host in info.hosts.values():
            if "kubo" not in host.processes:
                continue
            with IpfsClient(host.ipfs_api, timeout=10) as ipfs:
                bitswap, swarm = ipfs.bitswap_stat(), ipfs.bandwidth()
            rows.append({"host": host.name, "address": host.address, "fetched_bytes": bitswap["data_received"],
                         "served_bytes": bitswap["data_sent"], "blocks_fetched": bitswap["blocks_received"],
                         "blocks_served": bitswap["blocks_sent"], "swarm_in_bytes": swarm["total_in"],
                         "swarm_out_bytes": swarm["total_out"]})
        testnet: TestnetRow = {"state_file": str(self.state_file), "profile": info.profile, "subnet": info.subnet,
                   "bridge": info.bridge, "namespaces": [h.netns for h in info.hosts.values()],
                   "pids": sorted(c.pid for h in info.hosts.values() for c in h.processes.values() if c.pid),
                   "kept": self.o.keep}
        return {"hosts": rows, "testnet": testnet}

    def _print_extra(self, summary: Summary) -> None:
        table = Table("host", "address", "fetched", "served", "blocks in / out", "libp2p in", "libp2p out",
                      title="what each host's kubo fetched and served (bitswap content; libp2p: every protocol)")
        for row in summary.get("hosts", []):
            table.add_row(row["host"], row["address"], _size(row["fetched_bytes"]), _size(row["served_bytes"]),
                          f"{row['blocks_fetched']} / {row['blocks_served']}", _size(row["swarm_in_bytes"]),
                          _size(row["swarm_out_bytes"]))
        self.console.print(table)

    def _print_logs(self, logs: dict[str, str]) -> None:
        self.console.print(f"logs: {logs['demo']} (this run); each host's (kubo, worker, indexer, anvil) in "
                           f"{logs['hosts']}", highlight=False)

