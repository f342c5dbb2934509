"""Network benchmark: what running Tasknet across hosts costs, on a testnet of network namespaces (root only).

* transfer: a file of ``--transfer-mb`` MB (10^6 bytes, random) added on the dataset owner's node and fetched by a
  worker host's node over bitswap (``cat``, streamed and discarded), through the veth pairs and the bridge; MB/s,
  median of ``--repeats`` runs (fresh data each run). The same between two managed kubo nodes on loopback, as a
  reference: the difference is what the links cost, the rest is kubo's own work.
* the same ``--frames``-frame POV-Ray job (the demo's app and scene at ``--size``, R = 1 so that one host can run
  it) on 1 worker host, then on 4 (the other three daemons started): seconds from the job's posting to its last
  result on chain, median of the runs, and their ratio.
* the extra time the network adds per task: the same job on the loopback devnet (``tasknet up``'s: one kubo for
  every role, the same worker daemon) with one worker, against one worker host, their runs paired and alternated
  (both devnets up at once, so that a pair sees the same load); median of (one host - loopback) / frames. The
  devnet is taken down before the 4-host runs.

Prints a JSON line last: {"transfer_mb_s": ..., "one_host_s": ..., "four_hosts_s": ..., ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker
import httpx
from _bench_rows import NetworkRow, Spread

from oracle import Client, connect
from oracle.client._models import JobSpec
from oracle.images import build_base, build_busybox_base, image_exists
from oracle.market import Market
from tasknet import _devnet, _kubo
from tasknet._demo import EXAMPLE, POVRAY_BASE
from tasknet._testnet import Testnet, UpOptions, down, free_subnet, require_root, tasknet_cmd, up

ETHER = 10**18
MB = 10**6
#: every worker daemon of the benchmark, on loopback or on a host: the defaults, a short drain at the end
WORKER_ENV = {"TASKNET_WORKER_DRAIN_TIMEOUT": "10"}


def say(msg: str) -> None:
    print(f"bench network: {msg}", file=sys.stderr, flush=True)


def spread(values: list[float], digits: int = 2) -> Spread:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- transfer ---------------------------------------------------------------------------------------
def fetch_rate(source_api: str, source_swarm: str, dest_api: str, size: int) -> float:
    """MB/s of ``dest`` fetching ``size`` fresh random bytes that only ``source`` holds (timed: the fetch alone, the
    two nodes connected first: a node that has just started may not have dialled its peers yet)."""
    httpx.post(f"{dest_api}/api/v0/swarm/connect", params={"arg": source_swarm}, timeout=30).raise_for_status()
    data = os.urandom(size)
    added = httpx.post(f"{source_api}/api/v0/add", params={"cid-version": "1", "pin": "true", "quieter": "true"},
                       files={"file": ("blob.bin", data)}, timeout=300)
    added.raise_for_status()
    cid = added.json()["Hash"]
    del data
    t0 = time.monotonic()
    got = 0
    with httpx.stream("POST", f"{dest_api}/api/v0/cat", params={"arg": cid}, timeout=600) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            got += len(chunk)
    seconds = time.monotonic() - t0
    if got != size:
        raise SystemExit(f"bench network: fetched {got} bytes of {cid}, expected {size}")
    for api in (source_api, dest_api):  # keep the repos small: the next run adds fresh data anyway
        httpx.post(f"{api}/api/v0/pin/rm", params={"arg": cid}, timeout=60)
        httpx.post(f"{api}/api/v0/repo/gc", timeout=300)
    return size / MB / seconds


def loopback_transfer(tmp: Path, size: int, repeats: int) -> list[float]:
    a = _kubo.start(tmp / "loop-a", tmp / "loop-a.log")
    b = _kubo.start(tmp / "loop-b", tmp / "loop-b.log", peers=[a.swarm])
    try:
        return [fetch_rate(a.api, a.swarm, b.api, size) for _ in range(repeats)]
    finally:
        b.stop()
        a.stop()


# --- the job ------------------------------------------------------------------------------------------
def job_spec(app_id: int, dataset_id: int, frames: int, width: int, height: int) -> JobSpec:
    return JobSpec(app_id=app_id, dataset_id=dataset_id, count=frames, args=["{index}", str(frames), str(width),
                   str(height)], replication=1, reward=ETHER // 10, deadline_in=3600, max_run_seconds=60, cores=1,
                   memory_mb=256)


def publish(owner: Client, ds_owner: Client) -> tuple[int, int]:
    """The demo's POV-Ray app and scene (images built once, like tasknet demo). The image is not pushed to the
    devnet's registry: on both networks the workers find it in the shared engine by digest, so that the job differs
    by the IPFS network alone."""
    client = docker.from_env()
    if not image_exists(client, POVRAY_BASE):
        say("building the POV-Ray base image (debootstrap, once; ~40 s)")
        build_base(client, POVRAY_BASE, ["povray", "povray-includes"])
    build_busybox_base(client)
    image = owner.apps.build(EXAMPLE, "tasknet/povray-demo:1")
    app = owner.apps.register(image, name="povray-frames", deterministic_file="frame.bmp", push=False)
    return app.app_id, ds_owner.datasets.add(EXAMPLE / "scene.pov").dataset_id


def run_job(requester: Client, market: Market, spec: JobSpec, timeout: float = 900) -> float:
    """Seconds from the job's posting (its transaction mined) to its last result on chain."""
    job = requester.jobs.submit(spec)
    t0 = time.monotonic()
    end = t0 + timeout
    while market.job_record(job.job_id).finished < spec.num_tasks:
        if time.monotonic() > end:
            raise SystemExit(f"bench network: job {job.job_id} did not finish within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0


def wait_registered(market: Market, address: str, alive: Any, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ((w := market.worker_record(address)).registered and w.stake >= 10 * ETHER):
        if time.monotonic() > end or not alive():
            raise SystemExit(f"bench network: {what} did not register; see its log")
        time.sleep(0.2)


@dataclass
class JobBench:
    """One place the job runs: its requester (on its node), the marketplace, the job."""

    requester: Client
    market: Market
    spec: JobSpec

    def run(self) -> float:
        return run_job(self.requester, self.market, self.spec)


SpecFor = Callable[[int, int], JobSpec]  # (app id, dataset id) -> the job


def loopback_bench(stack: contextlib.ExitStack[bool | None], tmp: Path, spec_for: SpecFor, runs: int) -> JobBench:
    """The loopback devnet (``tasknet up``'s: anvil, one kubo for every role, a registry) with one worker process
    (``tasknet worker run --as worker-1``); ``stack`` takes it down."""
    path = tmp / "devnet" / "devnet.json"
    info = _devnet.up(_devnet.UpOptions(rpc_port=_devnet.free_port()), path)
    stack.callback(_devnet.down, path)
    requester = Client.from_devnet("requester", path)
    app_id, dataset_id = publish(Client.from_devnet("app-owner", path), Client.from_devnet("dataset-owner", path))
    market = Market(connect(info.rpc_url), info.contracts["Marketplace"])
    spec = spec_for(app_id, dataset_id)
    requester.account.deposit(runs * requester.jobs.quote(spec))
    with (tmp / "loopback-worker.log").open("wb") as log:
        worker = subprocess.Popen(tasknet_cmd("--json-logs", "worker", "run", "--as", "worker-1", "--stake", "10",
                                              "--state-dir", str(tmp / "loopback-worker"), "--devnet-file", str(path)),
                                  stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **WORKER_ENV})

    def stop() -> None:
        worker.terminate()
        worker.wait(60)
    stack.callback(stop)
    wait_registered(market, info.account("worker-1").address, lambda: worker.poll() is None, "the loopback worker")
    return JobBench(requester, market, spec)


def testnet_bench(tn: Testnet, spec_for: SpecFor, runs: int) -> JobBench:
    """The testnet's requester (on its host's node), the app and scene published from their owners' nodes, and
    worker-1's daemon started."""
    info = tn.info

    def client(role: str, host: str) -> Client:
        return Client.connect(info.rpc_url, marketplace=info.contracts["Marketplace"],
                              ipfs_api=info.host(host).ipfs_api, private_key=info.account(role).private_key,
                              deploy_block=info.deploy_block)
    requester = client("requester", "requester")
    app_id, dataset_id = publish(client("app-owner", "requester"), client("dataset-owner", "dataset-owner"))
    spec = spec_for(app_id, dataset_id)
    requester.account.deposit(runs * requester.jobs.quote(spec))
    first = info.workers()[0]
    tn.start_worker(first)
    tn.wait_worker(first)
    return JobBench(requester, Market(connect(info.rpc_url), info.contracts["Marketplace"]), spec)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/bench network")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measure (medians are reported)")
    ap.add_argument("--transfer-mb", type=int, default=50, help="size of the transferred file, MB (10^6 bytes)")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="320x240", help="frame size WxH")
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    return ap.parse_args(argv)


def _result(args: argparse.Namespace, rates: list[float], loop_rates: list[float], loop_s: list[float],
            one_s: list[float], four_s: list[float], load_before: str) -> NetworkRow:
    per_task = [(o - lo) / args.frames for o, lo in zip(one_s, loop_s, strict=True)]
    one, four, lo_med = statistics.median(one_s), statistics.median(four_s), statistics.median(loop_s)
    return {"transfer_mb_s": round(statistics.median(rates), 1), "one_host_s": round(one, 2),
            "four_hosts_s": round(four, 2), "speedup_4_vs_1": round(one / four, 2),
            "loopback_one_worker_s": round(lo_med, 2),
            "network_s_per_task": round(statistics.median(per_task), 3),
            "network_s_per_task_runs": spread(per_task, 3),
            "transfer_runs_mb_s": spread(rates, 1), "loopback_transfer_mb_s": round(statistics.median(loop_rates), 1),
            "loopback_transfer_runs_mb_s": spread(loop_rates, 1), "one_host_runs_s": spread(one_s),
            "four_hosts_runs_s": spread(four_s), "loopback_one_worker_runs_s": spread(loop_s),
            "frames": args.frames, "size": args.size, "replication": 1, "repeats": args.repeats,
            "transfer_mb": args.transfer_mb, "load_before": load_before, "load_after": load()}


def main(argv: list[str] | None = None) -> NetworkRow:
    args = _parse(argv)
    require_root("scripts/bench network")
    width, height = (int(x) for x in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="tasknet-bench-net-"))
    os.environ["TASKNET_HOME"] = str(tmp / "home")  # the testnet's profile and the devnet's, this run's only
    load_before = load()

    say("transfer between two kubo nodes on loopback (reference)")
    loop_rates = loopback_transfer(tmp, args.transfer_mb * MB, args.repeats)
    say(f"loopback transfer: {spread(loop_rates)} MB/s")

    def spec_for(app_id: int, dataset_id: int) -> JobSpec:
        return job_spec(app_id, dataset_id, args.frames, width, height)
    state = tmp / "home" / "testnet" / "testnet.json"
    tn: Testnet | None = None
    try:
        with contextlib.ExitStack() as devnet:
            say("the loopback devnet, one worker")
            loop = loopback_bench(devnet, tmp, spec_for, args.repeats)
            say("testnet: 4 worker hosts")
            tn = up(UpOptions(hosts=4, indexer=False, subnet=free_subnet(30), prefix="b" + secrets.token_hex(2),
                              profile="bench-net", start_workers=False, worker_env=WORKER_ENV), state)
            owner, fetcher = tn.info.host("dataset-owner"), tn.info.workers()[0]
            assert owner.ipfs_swarm is not None
            rates = [fetch_rate(owner.ipfs_api, owner.ipfs_swarm, fetcher.ipfs_api, args.transfer_mb * MB)
                     for _ in range(args.repeats)]
            say(f"transfer {owner.name} -> {fetcher.name}: {spread(rates)} MB/s")
            one_host = testnet_bench(tn, spec_for, 2 * args.repeats)
            # paired runs, in alternating order, so that the loopback and the one-host runs see the same load
            loop_s: list[float] = []
            one_s: list[float] = []
            for i in range(args.repeats):
                for bench in ((loop, one_host) if i % 2 == 0 else (one_host, loop)):
                    (loop_s if bench is loop else one_s).append(bench.run())
            say(f"loopback devnet: {spread(loop_s)} s; 1 worker host: {spread(one_s)} s")
        # the devnet is down: the 4 worker hosts have the machine to themselves (and to the other users')
        for host in tn.info.workers()[1:]:
            tn.start_worker(host)
        for host in tn.info.workers()[1:]:
            tn.wait_worker(host)
        time.sleep(1.0)  # past registration: every daemon polls
        four_s = [one_host.run() for _ in range(args.repeats)]
        say(f"4 worker hosts: {spread(four_s)} s")
    finally:
        down(state)  # also after a failed up: whatever it made
    result = _result(args, rates, loop_rates, loop_s, one_s, four_s, load_before)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
