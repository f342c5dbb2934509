"""A multi-host Tasknet network on one machine: ``tasknet testnet up/status/down``, and the network tests' fixture.

Each host is a Linux network namespace joined by a veth pair to one bridge; addresses come from a private /24
(``10.77.0.0/24`` by default) used only inside those namespaces. The bridge holds ``.254`` in the root namespace
so that this machine reaches every host; there is no default route, no forwarding and no NAT, so nothing in a
namespace reaches anything but the other hosts.

=============  =========  =======  ===================================================================
host           namespace  address  runs (besides its own kubo: API :5001, gateway :8080, swarm :4001)
=============  =========  =======  ===================================================================
chain          tn-chain   .1       anvil on :8545, contracts deployed, devnet parameters, tokens funded
requester      tn-req     .2       nothing: the requester's commands run here (its node is a bootstrap)
dataset-owner  tn-data    .3       nothing: the dataset owner's commands run here (its node is a bootstrap)
indexer        tn-idx     .4       ``tasknet indexer run`` (API and dashboard on :8700)
worker-i       tn-wi      .10+i    ``tasknet worker run`` (its settings: the profile, its own kubo)
NAME           tn-sN      .N       a service of the network (N in 5..9, e.g. a pinning service): added with
                                   :meth:`Testnet.add_service_host`, its processes started by the caller
=============  =========  =======  ===================================================================

Every kubo is a managed node (:mod:`tasknet._kubo`: no public bootstrap, TCP only) whose peers are the network
profile's ``ipfs_peers``: the requester's and the dataset owner's nodes, on a private IPFS network when a swarm key
is given (``--swarm-key``: every node gets it and the profile names it). The profile (``testnet`` by default) is
what the workers and the indexer read; the state file (``$TASKNET_HOME/testnet/testnet.json``) records every
namespace, link and process before it is made, so ``down`` removes exactly those, also after a crash. The
Docker engine is shared through its unix socket (unix sockets cross network namespaces); task containers run
with no network at all.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, Field, field_validator

from oracle import DEV_MNEMONIC, connect, deploy_all, dev_accounts, get_logger, load_artifact, send
from oracle.devnet import ComponentInfo, DevAccount, tasknet_home
from oracle.exceptions import DevnetError, TasknetError

from . import _devnet, _kubo

log = get_logger("tasknet.testnet")

DEFAULT_SUBNET = "10.77.0.0/24"
#: the private range every testnet's /24 must come from (used only inside the namespaces)
PRIVATE_RANGE = ipaddress.ip_network("10.77.0.0/16")
DEFAULT_PREFIX = "tn"
DEFAULT_PROFILE = "testnet"
MAX_WORKERS = 20
RPC_PORT, API_PORT, GATEWAY_PORT, SWARM_PORT, INDEXER_PORT = 8545, 5001, 8080, 4001, 8700
#: the dev accounts, in anvil's order: the roles first, then one per worker host (worker-1 ... worker-20)
ROLES = ["deployer", "requester", "app-owner", "dataset-owner", *[f"worker-{i}" for i in range(1, MAX_WORKERS + 1)]]
STOP_TIMEOUT = 15.0

HostKind = Literal["chain", "requester", "dataset-owner", "indexer", "worker", "service"]
#: the last bytes of the addresses kept for service hosts
SERVICE_BYTES = range(5, 10)
#: host name -> (kind, namespace suffix, last byte of its address, its dev account)
FIXED_HOSTS: dict[str, tuple[HostKind, str, int, str | None]] = {
    "chain": ("chain", "chain", 1, "deployer"),
    "requester": ("requester", "req", 2, "requester"),
    "dataset-owner": ("dataset-owner", "data", 3, "dataset-owner"),
    "indexer": ("indexer", "idx", 4, None),
}


class TestnetError(DevnetError):
    """The testnet cannot be made, is not there, or is not ours to change."""

    __test__ = False  # not a pytest test class


class HostInfo(BaseModel):
    """One host: its namespace, the root end of its veth, its address, its kubo and its processes."""

    name: str
    kind: HostKind
    netns: str
    veth: str = Field(description="the veth end on the bridge, in the root namespace (the host's end is eth0)")
    address: str
    account: str | None = Field(None, description="the dev account this host's processes sign with")
    ipfs_api: str
    ipfs_swarm: str | None = Field(None, description="its kubo's swarm multiaddr with /p2p/ID, once started")
    state_dir: str
    processes: dict[str, ComponentInfo] = Field(default_factory=dict, description="kubo, anvil, worker, indexer")

    def url(self, port: int) -> str:
        return f"http://{self.address}:{port}"


class TestnetInfo(BaseModel):
    """The state file: what ``up`` made (recorded before it is made) and what a participant needs to join."""

    __test__ = False

    version: int = 1
    profile: str
    prefix: str
    subnet: str
    bridge: str
    bridge_address: str
    chain_id: int = 31337
    rpc_url: str
    contracts: dict[str, str] = Field(default_factory=dict)
    deploy_block: int = 0
    mnemonic: str = DEV_MNEMONIC
    accounts: list[DevAccount] = Field(default_factory=list)
    stake_tokens: float = 10.0
    worker_env: dict[str, str] = Field(default_factory=dict, description="TASKNET_WORKER_* given to every worker")
    swarm_key: str | None = Field(None, description="the private IPFS network's key every node gets (64 hex digits)")
    hosts: dict[str, HostInfo] = Field(default_factory=dict)
    state_dir: str

    def account(self, role: str) -> DevAccount:
        for a in self.accounts:
            if a.role == role:
                return a
        raise TestnetError(f"the testnet has no account {role!r} (accounts: {', '.join(a.role for a in self.accounts)})")

    def host(self, name: str) -> HostInfo:
        try:
            return self.hosts[name]
        except KeyError:
            raise TestnetError(f"the testnet has no host {name!r} (hosts: {', '.join(self.hosts)})") from None

    def workers(self) -> list[HostInfo]:
        return [h for h in self.hosts.values() if h.kind == "worker"]

    @classmethod
    def load(cls, path: Path) -> TestnetInfo:
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as exc:
            raise TestnetError(f"no testnet state file at {path} ({exc.strerror}); start one with "
                               "'tasknet testnet up'") from exc
        except ValueError as exc:
            raise TestnetError(f"the testnet state file {path} is unreadable ({exc}); remove its namespaces and "
                               "bridge by hand ('ip netns list', 'ip netns del NAME', 'ip link del PREFIX-br0'), "
                               "then the file") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)


class UpOptions(BaseModel):
    """What ``tasknet testnet up`` builds."""

    hosts: int = Field(2, ge=0, le=MAX_WORKERS, description="worker hosts (0: add them later with add_worker)")
    indexer: bool = True
    subnet: str = DEFAULT_SUBNET
    prefix: str = DEFAULT_PREFIX
    profile: str = DEFAULT_PROFILE
    block_time: float | None = None
    stake_tokens: float = 10.0
    worker_env: dict[str, str] = Field(default_factory=dict)
    swarm_key: str | None = Field(None, description="a private IPFS network: every node gets this key (64 hex)")
    start_workers: bool = Field(True, description="start each worker host's daemon (False: the caller starts them "
                                "with start_worker, e.g. with fault options)")

    @field_validator("swarm_key")
    @classmethod
    def _swarm_key(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("swarm key must be 64 lowercase hex digits (e.g. from 'openssl rand -hex 32')")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", v):
            raise ValueError(f"prefix {v!r} must be 1 to 6 lowercase letters or digits, starting with a letter "
                             "(it starts every namespace and interface name)")
        return v

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v, strict=True)
        except ValueError as exc:
            raise ValueError(f"subnet {v!r} is not a network address ({exc})") from None
        if net.prefixlen != 24 or not net.subnet_of(PRIVATE_RANGE):  # type: ignore[arg-type]
            raise ValueError(f"subnet {v} must be a /24 inside {PRIVATE_RANGE}, the range kept for testnets")
        return str(net)


def default_state_file() -> Path:
    return tasknet_home() / "testnet" / "testnet.json"


def require_root(what: str = "tasknet testnet") -> None:
    if os.geteuid() != 0:
        raise TestnetError(f"{what} needs root: it creates network namespaces, veth pairs and a bridge; run it "
                           "as root (e.g. with sudo)")
    if shutil.which("ip") is None:
        raise TestnetError(f"{what} needs the 'ip' command (Debian package iproute2); install it and retry")


# --- links ---------------------------------------------------------------------------------------------
def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise TestnetError(f"'ip {' '.join(args)}' failed: {done.stderr.strip() or done.returncode}")
    return done


def netns_exists(name: str) -> bool:
    return (Path("/run/netns") / name).exists()


def link_exists(name: str, netns: str | None = None) -> bool:
    where = ["-n", netns] if netns else []
    return _ip(*where, "link", "show", "dev", name, check=False).returncode == 0


def link_up(name: str) -> bool | None:
    """Whether root-namespace link ``name`` is administratively up; None when it does not exist."""
    done = _ip("-o", "link", "show", "dev", name, check=False)
    if done.returncode != 0:
        return None
    flags = done.stdout.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in done.stdout else []
    return "UP" in flags


def netns_pids(name: str) -> list[int]:
    done = _ip("netns", "pids", name, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def subnet_in_use(subnet: str) -> str | None:
    """What already uses ``subnet`` in the root namespace (an address or a route), or None."""
    net = ipaddress.ip_network(subnet)
    for line in _ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = ipaddress.ip_interface(parts[parts.index("inet") + 1])
            if addr.ip in net or addr.network.overlaps(net):
                return f"address {addr} on {parts[1]}"
    for line in _ip("-4", "route", "show", check=False).stdout.splitlines():
        dest = line.split()[0]
        if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(net):
            return f"route {line.strip()}"
    return None


def free_subnet(prefix_from: int = 1) -> str:
    """A /24 of the testnet range that nothing on this machine uses (for tests beside a running testnet)."""
    for third in range(prefix_from, 255):
        candidate = f"10.77.{third}.0/24"
        if subnet_in_use(candidate) is None:
            return candidate
    raise TestnetError(f"every /24 of {PRIVATE_RANGE} is in use on this machine; remove a testnet first")


def _make_bridge(info: TestnetInfo) -> None:
    net = ipaddress.ip_network(info.subnet)
    _ip("link", "add", info.bridge, "type", "bridge")
    _ip("addr", "add", f"{info.bridge_address}/{net.prefixlen}", "dev", info.bridge)
    _ip("link", "set", info.bridge, "up")


def _make_host_link(info: TestnetInfo, host: HostInfo) -> None:
    """The host's namespace, its veth pair (eth0 inside, ``host.veth`` on the bridge) and its address."""
    net = ipaddress.ip_network(info.subnet)
    _ip("netns", "add", host.netns)
    _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
    _ip("link", "set", host.veth, "master", info.bridge, "up")
    _ip("-n", host.netns, "addr", "add", f"{host.address}/{net.prefixlen}", "dev", "eth0")
    _ip("-n", host.netns, "link", "set", "eth0", "up")
    _ip("-n", host.netns, "link", "set", "lo", "up")


def _remove_host_link(host: HostInfo) -> list[str]:
    """Kill what still runs in the host's namespace, delete the namespace and its veth. Returns what it removed."""
    removed: list[str] = []
    if netns_exists(host.netns):
        for pid in netns_pids(host.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            removed.append(f"pid {pid} in {host.netns}")
        _ip("netns", "del", host.netns, check=False)
        removed.append(f"netns {host.netns}")
    # The kernel removes both ends of the pair when it frees the namespace, which waits for the namespace's last
    # sockets (TIME_WAIT ones included, up to a minute): delete the pair now, so nothing of it stays visible.
    if link_exists(host.veth) and _ip("link", "del", host.veth, check=False).returncode == 0:
        removed.append(f"link {host.veth}")
    return removed


def set_link(host: HostInfo, up: bool) -> None:
    """Plug (``up``) or unplug the host's cable: its veth end on the bridge."""
    _ip("link", "set", host.veth, "up" if up else "down")


# --- processes -----------------------------------------------------------------------------------------
def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the caller's TASKNET_* settings (a host's processes get theirs from
    the profile and from ``extra``), but with TASKNET_HOME so they find the profile."""
    keep = {"TASKNET_HOME", "TASKNET_IPFS", "TASKNET_ANVIL"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKNET_") or k in keep}
    env["TASKNET_HOME"] = str(tasknet_home())
    env.update(extra or {})
    return env


def spawn_in(netns: str, cmd: Sequence[str], log_path: Path, env: Mapping[str, str]) -> ComponentInfo:
    """Start ``cmd`` detached inside ``netns`` (``ip netns exec`` execs it in place: the pid is the command's)."""
    full = ["ip", "netns", "exec", netns, *cmd]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=dict(env))
    return ComponentInfo(pid=proc.pid, started=True, cmdline=full, log=str(log_path))


def stop_all(components: Iterable[ComponentInfo], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every live component we started, wait for all of them together, SIGKILL what is left."""
    live = [c for c in components if c.started and c.pid and _devnet._same_process(c)]
    for c in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.pid, signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for c in live:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(c.pid, os.WNOHANG)  # type: ignore[arg-type]
        live = [c for c in live if _devnet.pid_alive(c.pid)]
        time.sleep(0.05)
    for c in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.pid, signal.SIGKILL)  # type: ignore[arg-type]


def tasknet_cmd(*args: str) -> list[str]:
    """``tasknet ARGS`` as this interpreter runs it (works from a virtualenv without activating it)."""
    return [sys.executable, "-m", "tasknet.cli", *args]


def http_ok(url: str) -> str | None:
    try:
        httpx.get(url, timeout=2).raise_for_status()
        return None
    except httpx.HTTPError as exc:
        return f"{url} does not answer ({exc.__class__.__name__}: {exc})"


# --- the testnet ---------------------------------------------------------------------------------------
class Testnet:
    """A testnet described by its state file; every change is saved there before it is made."""

    __test__ = False

    def __init__(self, info: TestnetInfo, path: Path) -> None:
        self.info, self.path = info, path
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None) -> Testnet:
        p = path or default_state_file()
        return cls(TestnetInfo.load(p), p)

    def save(self) -> None:
        with self._lock:
            self.info.save(self.path)

    # -- planning -------------------------------------------------------------------------------------
    def _plan_host(self, name: str) -> HostInfo:
        net = ipaddress.ip_network(self.info.subnet)
        if name in FIXED_HOSTS:
            kind, suffix, last, account = FIXED_HOSTS[name]
        else:
            index = int(name.removeprefix("worker-"))
            kind, suffix, last, account = "worker", f"w{index}", 10 + index, name
        netns = f"{self.info.prefix}-{suffix}"
        address = str(net.network_address + last)
        return HostInfo(name=name, kind=kind, netns=netns, veth=f"{netns}-v", address=address, account=account,
                        ipfs_api=f"http://{address}:{API_PORT}", state_dir=str(Path(self.info.state_dir) / name))

    def _check_free(self, hosts: Iterable[HostInfo], bridge: bool) -> None:
        """Refuse to plan over anything that exists already: what the state file lists must be ours alone."""
        taken = [f"network namespace {h.netns}" for h in hosts if netns_exists(h.netns)]
        taken += [f"interface {h.veth}" for h in hosts if link_exists(h.veth)]
        if bridge and link_exists(self.info.bridge):
            taken.append(f"interface {self.info.bridge}")
        if taken:
            raise TestnetError(f"{', '.join(taken)} already exist(s) on this machine; remove them or choose another "
                               "--prefix")

    # -- hosts ------------------------------------------------------------------------------------------
    def _add_host(self, host: HostInfo) -> None:
        """Record, then make, the host's namespace and link."""
        self.info.hosts[host.name] = host
        self.save()
        Path(host.state_dir).mkdir(parents=True, exist_ok=True)
        _make_host_link(self.info, host)

    def _record(self, host: HostInfo, name: str, component: ComponentInfo, swarm: str | None = None) -> None:
        with self._lock:  # kubo nodes start in threads: change and save under one lock
            host.processes[name] = component
            if swarm is not None:
                host.ipfs_swarm = swarm
            self.info.save(self.path)

    def record_process(self, host: HostInfo, name: str, component: ComponentInfo) -> None:
        """Record a process started on ``host`` (``spawn_in``): ``down`` stops it with the host."""
        self._record(host, name, component)

    def start_kubo(self, host: HostInfo, peers: Sequence[str], *, private: bool = True) -> None:
        """The host's kubo, with ``peers`` kept connected; on the testnet's private network (its swarm key) unless
        ``private`` is False (an outsider)."""
        state = Path(host.state_dir)
        node = _kubo.start(state / "ipfs", state / "logs" / "kubo.log", host=host.address, api_port=API_PORT,
                           gateway_port=GATEWAY_PORT, swarm_port=SWARM_PORT, peers=peers, netns=host.netns,
                           swarm_key=self.info.swarm_key if private else None)
        self._record(host, "kubo", node.info, swarm=node.swarm)

    def start_anvil(self, host: HostInfo, block_time: float | None) -> None:
        cmd = [_devnet.find_anvil(), "--host", host.address, "--port", str(RPC_PORT), "--chain-id",
               str(self.info.chain_id), "--mnemonic", self.info.mnemonic, "--accounts", str(len(ROLES)),
               "--balance", "10000", "--silent"]
        if block_time:
            cmd += ["--block-time", str(block_time)]
        info = spawn_in(host.netns, cmd, Path(host.state_dir) / "logs" / "anvil.log", clean_env())
        self._record(host, "anvil", info)
        _devnet.wait_until(lambda: _devnet.rpc_healthy(self.info.rpc_url) is None, info, "anvil", 30)

    def deploy(self) -> None:
        """Deploy the contracts as the deployer, fund every dev account from the token's faucet, and set the
        devnet's protocol windows (the contract's lower bounds)."""
        w3 = connect(self.info.rpc_url)
        accounts = dev_accounts(len(ROLES), self.info.mnemonic)
        deployment = deploy_all(w3, accounts[0])
        token = w3.eth.contract(address=w3.to_checksum_address(deployment.contracts["TestToken"]),
                                abi=load_artifact("TestToken")["abi"])
        for acct in accounts:
            send(w3, token.functions.faucet(acct.address, _devnet.FAUCET_AMOUNT), accounts[0])
        _devnet.set_devnet_params(w3, deployment.contracts["Marketplace"], accounts[0])
        self.info.contracts, self.info.deploy_block = deployment.contracts, deployment.deploy_block
        self.info.accounts = [DevAccount(role=r, address=a.address, private_key="0x" + a.key.hex().removeprefix("0x"))
                              for r, a in zip(ROLES, accounts, strict=True)]
        self.save()

    def write_profile(self) -> None:
        """The network profile: the chain host's RPC URL, the contracts, and as IPFS bootstrap the requester's and
        the dataset owner's nodes."""
        from oracle.network import NetworkProfile, artifacts_dir, save_profile

        peers = [h.ipfs_swarm for h in (self.info.host("requester"), self.info.host("dataset-owner")) if h.ipfs_swarm]
        save_profile(NetworkProfile(name=self.info.profile, chain_id=self.info.chain_id, rpc_urls=[self.info.rpc_url],
                                    contracts=self.info.contracts, deploy_block=self.info.deploy_block,
                                    token=self.info.contracts.get("TestToken"), ipfs_peers=peers,
                                    swarm_key=self.info.swarm_key))
        _devnet.write_network_artifacts(artifacts_dir(self.info.profile), self.info.chain_id, self.info.contracts)

    def profile_peers(self) -> list[str]:
        """The IPFS bootstrap a newcomer gets: the profile's ``ipfs_peers`` and nothing else."""
        from oracle.network import load_profile

        return list(load_profile(self.info.profile).ipfs_peers)

    def start_worker(self, host: HostInfo, extra_args: Sequence[str] = ()) -> None:
        """``tasknet worker run`` in the host's namespace: the profile names the chain, ``--ipfs-api`` its own kubo,
        the key comes in the environment (never on a command line); ``extra_args`` go to ``worker run``."""
        state = Path(host.state_dir)
        cmd = tasknet_cmd("--json-logs", "worker", "run", "--network", self.info.profile, "--ipfs-api", host.ipfs_api,
                          "--state-dir", str(state / "worker"), "--stake", f"{self.info.stake_tokens:g}",
                          *extra_args)
        assert host.account is not None
        env = clean_env({"TASKNET_PRIVATE_KEY": self.info.account(host.account).private_key, **self.info.worker_env})
        self._record(host, "worker", spawn_in(host.netns, cmd, state / "logs" / "worker.log", env))

    def wait_worker(self, host: HostInfo, timeout: float = 120.0) -> None:
        """Until the worker is registered with its stake on chain (it reached the chain host from its namespace)."""
        from oracle.market import Market

        assert host.account is not None
        market = Market(connect(self.info.rpc_url), self.info.contracts["Marketplace"])
        address = self.info.account(host.account).address
        need = int(self.info.stake_tokens * 10**18)

        def ready() -> bool:
            me = market.worker_record(address)
            return me.registered and me.stake >= need
        _devnet.wait_until(ready, host.processes["worker"], f"the worker on {host.name}", timeout)

    def stop_worker(self, host: HostInfo) -> None:
        """Stop (drain) the host's worker daemon, and remove what it left in the Docker engine."""
        worker = host.processes.get("worker")
        if worker is not None:
            stop_all([worker])
            with self._lock:
                del host.processes["worker"]
                self.info.save(self.path)
        self._remove_sandbox_leftovers([host])

    def start_indexer(self, host: HostInfo) -> None:
        state = Path(host.state_dir)
        cmd = tasknet_cmd("--json-logs", "indexer", "run", "--network", self.info.profile, "--ipfs-api",
                          host.ipfs_api, "--host", host.address, "--port", str(INDEXER_PORT), "--db",
                          str(state / "indexer.db"))
        info = spawn_in(host.netns, cmd, state / "logs" / "indexer.log", clean_env())
        self._record(host, "indexer", info)
        _devnet.wait_until(lambda: http_ok(host.url(INDEXER_PORT) + "/health") is None, info, "the indexer", 90)

    def add_worker(self, *, start: bool = True, wait: bool = True) -> HostInfo:
        """A new worker host: its namespace and link, its kubo with the profile's peers as its only bootstrap,
        and (``start``) its worker daemon. This is how a late joiner comes in."""
        taken = {int(h.name.removeprefix("worker-")) for h in self.info.workers()}
        index = next((i for i in range(1, MAX_WORKERS + 1) if i not in taken), None)
        if index is None:
            raise TestnetError(f"the testnet has {MAX_WORKERS} worker hosts already, the most it can fund")
        host = self._plan_host(f"worker-{index}")
        self._check_free([host], bridge=False)
        self._add_host(host)
        self.start_kubo(host, self.profile_peers())
        if start:
            self.start_worker(host)
            if wait:
                self.wait_worker(host)
        return host

    def add_service_host(self, name: str) -> HostInfo:
        """A host for one of the network's own services (a pinning service, a registry...): its namespace and link
        on the next free address of .5 to .9, and nothing running yet (start its processes with ``spawn_in`` and
        ``record_process``, so that ``down`` stops them)."""
        if name in self.info.hosts or name in FIXED_HOSTS or name.startswith("worker-"):
            raise TestnetError(f"the testnet has a host named {name!r} already, or that name is kept for a role")
        net = ipaddress.ip_network(self.info.subnet)
        taken = {h.address for h in self.info.hosts.values()}
        last = next((b for b in SERVICE_BYTES if str(net.network_address + b) not in taken), None)
        if last is None:
            raise TestnetError(f"the testnet has {len(SERVICE_BYTES)} service hosts already, the most it can address")
        netns = f"{self.info.prefix}-s{last}"
        address = str(net.network_address + last)
        host = HostInfo(name=name, kind="service", netns=netns, veth=f"{netns}-v", address=address,
                        ipfs_api=f"http://{address}:{API_PORT}", state_dir=str(Path(self.info.state_dir) / name))
        self._check_free([host], bridge=False)
        self._add_host(host)
        return host

    def remove_host(self, name: str) -> list[str]:
        """Stop the host's processes and remove its namespace and link (a worker host leaving for good)."""
        host = self.info.host(name)
        stop_all(c for k, c in host.processes.items() if k != "kubo")
        if host.kind == "worker":
            self._remove_sandbox_leftovers([host])
        stop_all([c for k, c in host.processes.items() if k == "kubo"])
        removed = _remove_host_link(host)
        del self.info.hosts[name]
        self.save()
        return removed

    def _remove_sandbox_leftovers(self, hosts: Iterable[HostInfo]) -> None:
        """Containers and volumes of these hosts' workers that a killed daemon left in the engine."""
        try:
            import docker

            from worker import remove_sandbox_leftovers, sandbox_owner

            client = docker.from_env()
        except Exception:  # noqa: BLE001 - no engine: nothing of ours can be in it
            return
        try:
            for h in hosts:
                if h.account is not None and self.info.accounts:
                    address = self.info.account(h.account).address
                    remove_sandbox_leftovers(client, sandbox_owner(address, Path(h.state_dir) / "worker"))
        finally:
            client.close()

    # -- running commands on a host -------------------------------------------------------------------
    def env_for(self, host_name: str, account: str | None = None) -> dict[str, str]:
        """The environment of a command on a host: the profile, the host's own kubo, the account's key."""
        host = self.info.host(host_name)
        extra = {"TASKNET_NETWORK": self.info.profile, "TASKNET_IPFS_API": host.ipfs_api}
        role = account or host.account
        if role is not None and self.info.accounts:
            extra["TASKNET_PRIVATE_KEY"] = self.info.account(role).private_key
        return clean_env(extra)

    def run(self, host_name: str, cmd: Sequence[str], *, account: str | None = None, timeout: float = 300,
            check: bool = True, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the host's namespace with :meth:`env_for`; raise with its output if it fails."""
        host = self.info.host(host_name)
        full = ["ip", "netns", "exec", host.netns, *cmd]
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**self.env_for(host_name, account), **(env or {})}, check=False)
        if check and done.returncode != 0:
            raise TestnetError(f"{' '.join(cmd[:6])}… on {host_name} exited with {done.returncode}:\n"
                               f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done

    def tasknet(self, host_name: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """``tasknet ARGS`` on a host (see :meth:`run`)."""
        return self.run(host_name, tasknet_cmd(*args), **kw)  # type: ignore[arg-type]

    def popen(self, host_name: str, cmd: Sequence[str], *, account: str | None = None,
              log_path: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the host's namespace in the background (the caller waits for it or stops it)."""
        host = self.info.host(host_name)
        out = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
        try:
            return subprocess.Popen(["ip", "netns", "exec", host.netns, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env_for(host_name, account),
                                    start_new_session=True)
        finally:
            if log_path is not None:
                out.close()  # type: ignore[union-attr]


def up(opts: UpOptions, state_file: Path | None = None, progress: Callable[[str], None] = lambda s: None) -> Testnet:
    """Build the testnet ``opts`` describes; on any failure remove what was made and raise."""
    require_root()
    path = state_file or default_state_file()
    if path.exists():
        raise TestnetError(f"a testnet state file exists already ({path}); check it with 'tasknet testnet status' or "
                           "remove that testnet with 'tasknet testnet down'")
    net = ipaddress.ip_network(opts.subnet)
    used = subnet_in_use(opts.subnet)
    if used is not None:
        raise TestnetError(f"subnet {opts.subnet} is already in use on this machine ({used}); choose another "
                           "with --subnet")
    state_dir = path.parent / "hosts"
    shutil.rmtree(state_dir, ignore_errors=True)
    chain_address = str(net.network_address + FIXED_HOSTS["chain"][2])
    info = TestnetInfo(profile=opts.profile, prefix=opts.prefix, subnet=opts.subnet, bridge=f"{opts.prefix}-br0",
                       bridge_address=str(net.network_address + 254), rpc_url=f"http://{chain_address}:{RPC_PORT}",
                       stake_tokens=opts.stake_tokens, worker_env=dict(opts.worker_env), swarm_key=opts.swarm_key,
                       state_dir=str(state_dir))
    tn = Testnet(info, path)
    names = ["chain", "requester", "dataset-owner", *(["indexer"] if opts.indexer else []),
             *[f"worker-{i}" for i in range(1, opts.hosts + 1)]]
    planned = [tn._plan_host(n) for n in names]
    tn._check_free(planned, bridge=True)
    tn.save()  # from here on, 'down' removes whatever exists of what the file lists
    try:
        _build(tn, planned, opts, progress)
    except BaseException:
        with contextlib.suppress(Exception):
            down(path)
        raise
    log.info("testnet_up", hosts=len(info.hosts), rpc=info.rpc_url, file=str(path))
    return tn


def _build(tn: Testnet, planned: list[HostInfo], opts: UpOptions, progress: Callable[[str], None]) -> None:
    info = tn.info
    progress("bridge and namespaces")
    _make_bridge(info)
    for host in planned:
        tn._add_host(host)
    progress("chain")
    chain = info.host("chain")
    tn.start_anvil(chain, opts.block_time)
    progress("contracts")
    tn.deploy()
    progress("IPFS bootstrap nodes")
    requester, owner = info.host("requester"), info.host("dataset-owner")
    tn.start_kubo(requester, [])
    assert requester.ipfs_swarm is not None
    tn.start_kubo(owner, [requester.ipfs_swarm])
    tn.write_profile()
    progress("IPFS nodes")
    peers = tn.profile_peers()
    others = [h for h in planned if h.name not in ("requester", "dataset-owner")]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda h: tn.start_kubo(h, peers), others))
    if opts.indexer:
        progress("indexer")
        tn.start_indexer(info.host("indexer"))
    if not opts.start_workers:
        return
    progress("workers")
    workers = info.workers()
    for host in workers:
        tn.start_worker(host)
    for host in workers:
        tn.wait_worker(host)


def down(state_file: Path | None = None) -> list[str]:
    """Stop every process the testnet started and remove every namespace, link and the bridge it made (and
    nothing else), then its profile and state file. Safe to repeat, and after a crash of ``up``."""
    require_root()
    path = state_file or default_state_file()
    if not path.exists():
        return []
    tn = Testnet.load(path)
    info = tn.info
    done: list[str] = []
    hosts = list(info.hosts.values())
    daemons = [c for h in hosts for k, c in h.processes.items() if k in ("worker", "indexer")]
    stop_all(daemons)  # workers drain (briefly) and clean their containers up
    tn._remove_sandbox_leftovers(h for h in hosts if h.kind == "worker")
    stop_all([c for h in hosts for k, c in h.processes.items() if k not in ("worker", "indexer")])
    done += [f"{k} on {h.name}" for h in hosts for k in h.processes]
    for host in hosts:
        done += _remove_host_link(host)
    if link_exists(info.bridge):
        _ip("link", "del", info.bridge, check=False)
        done.append(f"bridge {info.bridge}")
    _remove_profile_if_ours(info)
    path.unlink(missing_ok=True)
    log.info("testnet_down", removed=len(done))
    return done


def _remove_profile_if_ours(info: TestnetInfo) -> None:
    from oracle.network import artifacts_dir, load_profile, remove_profile

    with contextlib.suppress(TasknetError):
        if load_profile(info.profile).rpc_url == info.rpc_url:
            remove_profile(info.profile)
            shutil.rmtree(artifacts_dir(info.profile).parent, ignore_errors=True)


# --- status ----------------------------------------------------------------------------------------------
class HostStatus(BaseModel):
    host: str
    netns: str
    address: str
    component: str
    healthy: bool
    detail: str


def status(state_file: Path | None = None) -> list[HostStatus]:
    """Each host's link, kubo and processes: alive, and answering on the host's address."""
    tn = Testnet.load(state_file)
    rows: list[HostStatus] = []
    for host in tn.info.hosts.values():
        def add(component: str, problem: str | None, ok: str, host: HostInfo = host) -> None:
            rows.append(HostStatus(host=host.name, netns=host.netns, address=host.address, component=component,
                                   healthy=problem is None, detail=problem or ok))

        state = link_up(host.veth)
        add("link", None if netns_exists(host.netns) and state else
            f"namespace {host.netns} missing" if not netns_exists(host.netns) else
            f"link {host.veth} {'missing' if state is None else 'down'}", f"{host.veth} on {tn.info.bridge}")
        for name, comp in host.processes.items():
            alive = _devnet._same_process(comp)
            problem = None if alive else f"pid {comp.pid} is not running (log {comp.log})"
            ok = f"pid {comp.pid}"
            if alive and name == "kubo":
                problem = _devnet.ipfs_healthy(host.ipfs_api)
                ok = f"pid {comp.pid}, API {host.ipfs_api}, {_peer_count(host.ipfs_api)} peer(s)"
            elif alive and name == "anvil":
                problem = _devnet.rpc_healthy(tn.info.rpc_url)
                ok = f"pid {comp.pid}, JSON-RPC {tn.info.rpc_url} (chain {tn.info.chain_id})"
            elif alive and name == "indexer":
                problem = http_ok(host.url(INDEXER_PORT) + "/health")
                ok = f"pid {comp.pid}, API and dashboard {host.url(INDEXER_PORT)}/"
            elif alive and name == "worker" and host.account:
                ok = f"pid {comp.pid}, account {tn.info.account(host.account).address}"
            add(name, problem, ok)
    return rows


def _peer_count(api: str) -> int:
    try:
        answer = httpx.post(f"{api}/api/v0/swarm/peers", timeout=2)
        return len(answer.json().get("Peers") or [])
    except (httpx.HTTPError, ValueError):
        return 0
