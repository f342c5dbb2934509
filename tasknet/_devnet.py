"""The embedded devnet: anvil + kubo + an image registry + a Docker engine, all on loopback.

``up`` starts what is missing and writes the devnet file; ``status`` checks every component; ``down`` stops
exactly what ``up`` started. Each component can also be started alone (the test fixtures do).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from eth_account.signers.local import LocalAccount
from pydantic import AfterValidator, BaseModel
from web3 import Web3

from oracle import DEV_MNEMONIC, DevnetInfo, connect, deploy_all, dev_accounts, get_logger, load_artifact
from oracle.devnet import ComponentInfo, DevAccount, default_devnet_file
from oracle.exceptions import DevnetError, TasknetError

log = get_logger("tasknet.devnet")

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES = ["deployer", "requester", "app-owner", "dataset-owner",
         "worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6"]
FAUCET_AMOUNT = 100_000 * 10**18


# --- binaries and ports ------------------------------------------------------------------------------
def find_anvil() -> str:
    """anvil from ``$TASKNET_ANVIL``, the repo's node_modules, or PATH."""
    forced = os.environ.get("TASKNET_ANVIL")
    candidates = [forced] if forced else [
        str(REPO_ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"), shutil.which("anvil")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise DevnetError("anvil not found (looked at $TASKNET_ANVIL, node_modules/@foundry-rs/anvil-linux-amd64 and "
                      "PATH); run 'scripts/setup' (or 'npm ci') to install it")


def find_ipfs() -> str:
    """kubo's ``ipfs`` from ``$TASKNET_IPFS`` or PATH (and ~/.local/bin, where setup puts it without root)."""
    forced = os.environ.get("TASKNET_IPFS")
    for c in [forced] if forced else [shutil.which("ipfs"), str(Path.home() / ".local/bin/ipfs")]:
        if c and os.access(c, os.X_OK):
            return c
    raise DevnetError("kubo's 'ipfs' binary not found (looked at $TASKNET_IPFS and PATH); run 'scripts/setup' "
                      "to build kubo v0.43.1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def check_port_free(port: int, what: str, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise DevnetError(f"port {port} on 127.0.0.1 is already in use, so {what} cannot listen there; "
                              f"stop what uses it or pick another port with {option}") from None


# --- processes --------------------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (exited, not yet reaped) is dead
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _program(cmdline: Sequence[str]) -> str:
    """The program a command line runs: after ``ip netns exec NS`` the command that follows (``ip`` execs it in
    place, so that is what the pid runs), else the first word."""
    if len(cmdline) > 4 and Path(cmdline[0]).name == "ip" and list(cmdline[1:3]) == ["netns", "exec"]:
        return cmdline[4]
    return cmdline[0]


def _same_process(info: ComponentInfo) -> bool:
    """True if ``info.pid`` is alive and still runs the program we started (pids get reused)."""
    if not pid_alive(info.pid):
        return False
    try:
        cmd = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return True
    return not info.cmdline or Path(cmd).name == Path(_program(info.cmdline)).name


def spawn(cmdline: list[str], log_path: Path, env: dict[str, str] | None = None) -> ComponentInfo:
    """Start ``cmdline`` detached (own session), output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(cmdline, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    return ComponentInfo(pid=proc.pid, started=True, cmdline=cmdline, log=str(log_path))


def stop(info: ComponentInfo, *, timeout: float = 10.0) -> None:
    """Stop a component we started: SIGTERM, wait, then SIGKILL."""
    if not info.started or not info.pid or not _same_process(info):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.pid, os.WNOHANG)
        if not pid_alive(info.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGKILL)


def wait_until(check: Callable[[], bool], info: ComponentInfo, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if info.pid and not pid_alive(info.pid):
            tail = Path(info.log).read_text(errors="replace")[-800:] if info.log else ""
            raise DevnetError(f"{what} exited while starting; its log ({info.log}) ends with:\n{tail}")
        time.sleep(0.05)
    stop(info)
    raise DevnetError(f"{what} did not become healthy within {timeout:.0f} s; see its log {info.log}")


# --- components ---------------------------------------------------------------------------------------
#: anvil options that keep a long-running devnet fast and its memory bounded (issue #22), each unless
#: ``extra_args`` gives its own:
#:
#: * ``--hardfork cancun``: the EVM version the contracts are compiled for (scripts/compile.js). From Prague on,
#:   every block writes its parent's hash into the EIP-2935 history contract's storage (a ring of 8,191 slots), and
#:   anvil 1.7 rebuilds the storage tries of the whole state after every block: with automine (a block per
#:   transaction) that alone made each transaction's cost grow with the number of blocks mined so far.
#: * ``--prune-history 64``: keep the states of the last 64 blocks in memory and none on disk, instead of every
#:   state (in memory, then serialised to a disk cache as blocks are mined). Deep enough for the reorgs the
#:   indexer and the worker follow (their finality depth is 64) and for ``anvil_reorg`` in tests; older blocks,
#:   transactions, receipts and logs are all kept (only ``eth_call`` at a block older than 64 is refused).
#:   ``evm_snapshot``/``evm_revert`` keep their own copies and work at any depth.
#:
#: Not used: ``--transaction-block-keeper`` drops old blocks' transactions and logs (requesters, workers, the
#: indexer and the auditor read events from the deploy block on), ``--max-persisted-states 0`` keeps every state in
#: memory instead.
ANVIL_LONG_RUN_ARGS = {"--hardfork": "cancun", "--prune-history": "64"}


def start_anvil(state_dir: Path, port: int, *, block_time: float | None = None, chain_id: int = 31337,
                mnemonic: str = DEV_MNEMONIC, extra_args: Sequence[str] = (), long_run_args: bool = True
                ) -> tuple[ComponentInfo, str]:
    """Start anvil on 127.0.0.1:``port`` (``extra_args``: more anvil options, e.g. ``--hardfork berlin``; they
    replace the :data:`ANVIL_LONG_RUN_ARGS` of the same name; ``long_run_args=False``: anvil's own defaults)."""
    check_port_free(port, "anvil", "--rpc-port")
    defaults = [x for k, v in ANVIL_LONG_RUN_ARGS.items() if k not in extra_args for x in (k, v)] \
        if long_run_args else []
    cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
           "--mnemonic", mnemonic, "--accounts", "10", "--balance", "10000", "--silent", *defaults, *extra_args]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    info = spawn(cmd, state_dir / "logs" / "anvil.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: rpc_healthy(url) is None, info, "anvil", 20)
    return info, url


def rpc_healthy(url: str) -> str | None:
    """None if the JSON-RPC endpoint answers, else the reason."""
    try:
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2)
        r.raise_for_status()
        r.json()["result"]
        return None
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        return f"JSON-RPC at {url} does not answer ({exc.__class__.__name__}: {exc})"


def start_kubo(state_dir: Path, api_port: int, gateway_port: int, swarm_port: int | None = None,
               api_origins: Sequence[str] = ()) -> tuple[ComponentInfo, str, str]:
    """A kubo repo under ``state_dir/ipfs``, its daemon online on loopback with no public bootstrap (other nodes
    on this machine, or in its network namespaces, can join it by its swarm address: see :func:`kubo_swarm`).
    ``api_origins``: browser pages allowed to call its RPC API (CORS), e.g. a Dapp page that uploads inputs."""
    from . import _kubo

    check_port_free(api_port, "the IPFS API", "--ipfs-port")
    check_port_free(gateway_port, "the IPFS gateway", "--ipfs-gateway-port")
    node = _kubo.start(state_dir / "ipfs", state_dir / "logs" / "kubo.log", api_port=api_port,
                       gateway_port=gateway_port, swarm_port=swarm_port, api_origins=api_origins)
    return node.info, node.api, node.gateway


def web_origin(text: str) -> str:
    """A web page's origin as a browser sends it in its ``Origin`` header (``scheme://host[:port]``), which is what
    kubo compares, byte for byte, with its ``API.HTTPHeaders`` ``Access-Control-Allow-Origin`` list: the scheme
    and host lower-cased, the default port (80, 443) and a lone trailing ``/`` dropped. Raises ValueError for
    anything else: ``*`` (every web page could then drive the node's RPC API), a scheme other than http(s), no
    host, a path, a query, a fragment or a user name."""
    if text.strip() == "*":
        raise ValueError("'*' would let every web page the browser opens call this node's RPC API (add, pin, "
                         "config...); name the page's origin, e.g. http://127.0.0.1:8000")
    try:
        url = urlsplit(text.strip())
        port = url.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a web origin ({exc}); write scheme://host[:port], e.g. "
                         "http://127.0.0.1:8000") from None
    scheme, host = url.scheme.lower(), (url.hostname or "")
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"{text!r} is not a web origin: write http(s)://host[:port], e.g. http://127.0.0.1:8000")
    if url.path not in ("", "/") or url.query or url.fragment or url.username is not None:
        raise ValueError(f"{text!r} is not a web origin: an origin has no path, query, fragment or user name "
                         f"(the page {text} has the origin {scheme}://{url.netloc.rpartition('@')[2]})")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


#: a web page allowed to call a kubo RPC API from a browser (CORS): see :func:`web_origin`
WebOrigin = Annotated[str, AfterValidator(web_origin)]


def kubo_swarm(api: str) -> str | None:
    """The loopback TCP swarm multiaddr (with ``/p2p/ID``) of the kubo whose RPC API is ``api``, or None."""
    try:
        answer = httpx.post(f"{api}/api/v0/id", timeout=5)
        answer.raise_for_status()
        ident = answer.json()
    except (httpx.HTTPError, ValueError):
        return None
    for addr in ident.get("Addresses") or []:
        if addr.startswith("/ip4/") and "/tcp/" in addr and "/p2p/" in addr:
            return str(addr)
    return None


def ipfs_healthy(api: str) -> str | None:
    try:
        r = httpx.post(f"{api}/api/v0/id", timeout=2)
        r.raise_for_status()
        return None
    except httpx.HTTPError as exc:
        return f"IPFS RPC API at {api} does not answer ({exc.__class__.__name__}: {exc})"


def start_registry(state_dir: Path, port: int) -> tuple[ComponentInfo, str]:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        raise DevnetError("Debian's docker-registry is not installed; run 'scripts/setup' (or apt-get install "
                          "docker-registry)")
    check_port_free(port, "the image registry", "--registry-port")
    storage = state_dir / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config = state_dir / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    info = spawn([binary, "serve", str(config)], state_dir / "logs" / "registry.log")
    host = f"127.0.0.1:{port}"
    wait_until(lambda: registry_healthy(host) is None, info, "the image registry", 20)
    return info, host


def registry_healthy(host: str) -> str | None:
    try:
        httpx.get(f"http://{host}/v2/", timeout=2).raise_for_status()
        return None
    except httpx.HTTPError as exc:
        return f"image registry at {host} does not answer ({exc.__class__.__name__}: {exc})"


def docker_healthy(docker_host: str | None = None) -> str | None:
    import docker
    import docker.errors

    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        client.ping()
        client.close()
        return None
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        return f"no Docker engine answers at {docker_host or os.environ.get('DOCKER_HOST', 'the default socket')} ({exc})"


def ensure_docker(state_dir: Path) -> ComponentInfo:
    """Use a Docker engine that answers; else start ``dockerd --bridge=none --iptables=false`` (as root)."""
    if docker_healthy() is None:
        return ComponentInfo(started=False)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if os.geteuid() != 0 or not os.access(dockerd, os.X_OK):
        raise DevnetError(
            "no Docker engine answers and tasknet cannot start one "
            + ("(dockerd is not installed; run 'scripts/setup')" if not os.access(dockerd, os.X_OK)
               else "without root") + "; start Docker yourself ('sudo systemctl start docker' or "
            "'sudo dockerd --bridge=none --iptables=false &') or point DOCKER_HOST at a running engine"
        )
    pidfile = Path("/var/run/docker.pid")
    with contextlib.suppress(ValueError, OSError):
        old = int(pidfile.read_text().strip())
        if pid_alive(old):
            raise DevnetError(f"a dockerd (pid {old}) is running but does not answer; wait for it or stop it "
                              "('kill {old}'), then retry")
    info = spawn([dockerd, "--bridge=none", "--iptables=false"], state_dir / "logs" / "dockerd.log")
    wait_until(lambda: docker_healthy() is None, info, "dockerd", 60)
    return info


# --- the devnet ---------------------------------------------------------------------------------------
class UpOptions(BaseModel):
    rpc_port: int = 8545
    ipfs_port: int | None = None
    ipfs_gateway_port: int | None = None
    registry_port: int | None = None
    block_time: float | None = None
    chain_id: int = 31337
    ipfs_api_origins: list[WebOrigin] = []  # web pages allowed to call the kubo RPC API (CORS), e.g. a Dapp page


def devnet_file_state(path: Path) -> tuple[DevnetInfo | None, list[str]]:
    """The devnet file at ``path`` (if any) and the list of components it started that are now dead."""
    if not path.exists():
        return None, []
    try:
        info = DevnetInfo.load(path)
    except DevnetError:
        return None, ["devnet file unreadable"]
    dead = [name for name, c in info.components.items() if c.started and not _same_process(c)]
    return info, dead


def up(opts: UpOptions, devnet_file: Path | None = None, progress: Callable[[str], None] = lambda s: None
       ) -> DevnetInfo:
    path = devnet_file or default_devnet_file()
    existing, dead = devnet_file_state(path)
    if existing is not None and not dead:
        raise DevnetError(f"a devnet is already running (RPC {existing.rpc_url}, file {path}); use it, check it "
                          "with 'tasknet status', or stop it with 'tasknet down'")
    if existing is not None or dead:
        raise DevnetError(f"the devnet file {path} is stale ({', '.join(dead)} no longer running); run "
                          "'tasknet down' to clean it up, then 'tasknet up'")
    state_dir = path.parent
    for sub in ("ipfs", "registry", "logs", "artifacts"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    started: dict[str, ComponentInfo] = {}
    try:
        progress("docker")
        started["dockerd"] = ensure_docker(state_dir)
        progress("anvil")
        started["anvil"], rpc_url = start_anvil(state_dir, opts.rpc_port, block_time=opts.block_time,
                                                chain_id=opts.chain_id)
        progress("kubo")
        started["kubo"], ipfs_api, gateway = start_devnet_kubo(state_dir, opts)
        progress("registry")
        started["registry"], registry = start_registry(state_dir, opts.registry_port or free_port())
        progress("contracts")
        info = _deploy(rpc_url, opts, ipfs_api, gateway, registry, started, state_dir)
    except BaseException:
        for c in reversed(list(started.values())):
            stop(c)
        raise
    info.save(path)
    write_devnet_profile(info)
    log.info("devnet_up", rpc=info.rpc_url, ipfs=info.ipfs_api, registry=info.registry, file=str(path))
    return info


def start_devnet_kubo(state_dir: Path, opts: UpOptions) -> tuple[ComponentInfo, str, str]:
    """The devnet's kubo as ``up`` starts it from its options: on the given ports (else free ones), its RPC API
    open to the web pages ``opts.ipfs_api_origins`` names (``tasknet up --ipfs-api-origin``). Returns its process
    record, RPC API URL and gateway URL."""
    return start_kubo(state_dir, opts.ipfs_port or free_port(), opts.ipfs_gateway_port or free_port(),
                      api_origins=opts.ipfs_api_origins)


def write_devnet_profile(info: DevnetInfo) -> None:
    """The network profile ``devnet`` (every role reads a profile; the devnet is just one of them), with its
    Truffle artifacts beside it."""
    from oracle.network import DEVNET, NetworkProfile, artifacts_dir, save_profile

    swarm = kubo_swarm(info.ipfs_api)
    save_profile(NetworkProfile(name=DEVNET, chain_id=info.chain_id, rpc_urls=[info.rpc_url],
                                contracts=info.contracts, deploy_block=info.deploy_block,
                                token=info.contracts.get("TestToken"), ipfs_peers=[swarm] if swarm else [],
                                ipfs_gateway=info.ipfs_gateway, image_registry=info.registry))
    write_network_artifacts(artifacts_dir(DEVNET), info.chain_id, info.contracts)


def _deploy(rpc_url: str, opts: UpOptions, ipfs_api: str, gateway: str, registry: str,
            started: dict[str, ComponentInfo], state_dir: Path) -> DevnetInfo:
    w3 = connect(rpc_url)
    accounts = dev_accounts(len(ROLES))
    deployment = deploy_all(w3, accounts[0])
    token = w3.eth.contract(address=Web3.to_checksum_address(deployment.contracts["TestToken"]), abi=load_artifact("TestToken")["abi"])
    from oracle import send

    for acct in accounts:
        send(w3, token.functions.faucet(acct.address, FAUCET_AMOUNT), accounts[0])
    set_devnet_params(w3, deployment.contracts["Marketplace"], accounts[0])
    write_network_artifacts(state_dir / "artifacts", w3.eth.chain_id, deployment.contracts)
    return DevnetInfo(
        rpc_url=rpc_url, chain_id=w3.eth.chain_id, block_time=opts.block_time, ipfs_api=ipfs_api,
        ipfs_gateway=gateway, registry=registry, docker_host=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        contracts=deployment.contracts, deploy_block=deployment.deploy_block, mnemonic=DEV_MNEMONIC,
        accounts=[DevAccount(role=r, address=a.address, private_key="0x" + a.key.hex().removeprefix("0x"))
                  for r, a in zip(ROLES, accounts, strict=True)],
        components=started, state_dir=str(state_dir),
    )


#: the devnet's protocol windows: the contract's lower bounds, so demos and tests do not wait for minutes
DEVNET_PARAMS = {"claimGrace": 60, "commitWindow": 60, "revealWindow": 60, "unstakeDelay": 60}


def set_devnet_params(w3: Web3, marketplace: str, owner: LocalAccount) -> None:
    from oracle import AbiList, send
    from oracle.market import Market

    market = Market(w3, marketplace)
    params = {**market.market_params().model_dump(by_alias=True), **DEVNET_PARAMS}
    entries: AbiList = market.contract.abi
    fields = [c["name"] for c in next(i for i in entries if i.get("name") == "setParams")["inputs"][0]["components"]]
    send(w3, market.contract.functions.setParams(tuple(params[f] for f in fields)), owner,
         extra_abis=market.error_abis)


def write_network_artifacts(out: Path, chain_id: int, contracts: dict[str, str]) -> None:
    """Truffle artifacts of the deployed ``contracts`` (name -> address) for JavaScript frontends and tools.

    Each has ``networks[chainId].address``; a contract that calls libraries (the marketplace) also has
    ``networks[chainId].links`` (library name -> address, Truffle's format) and its ``bytecode`` and
    ``deployedBytecode`` linked to those libraries, as deployed on this chain: ``@truffle/contract`` deploys
    or loads it as it is, and tools that refuse unlinked bytecode (Foundry's ``cast interface``) read it.
    ``linkReferences`` stay, so a Hardhat-style linker can still point it at other libraries.
    """
    from oracle import link_bytecode

    out.mkdir(parents=True, exist_ok=True)
    for name, address in contracts.items():
        art = dict(load_artifact(name))
        network: dict[str, object] = {"address": address}
        refs = art.get("linkReferences", {})
        if refs:
            libraries = {f"{source}:{lib}": contracts.get(lib, "") for source, libs in refs.items() for lib in libs}
            if not all(libraries.values()):
                raise DevnetError(f"{name} links {sorted(libraries)} but the deployment has no address for "
                                  f"{sorted(fq for fq, a in libraries.items() if not a)}; deploy them with it")
            network["links"] = {fq.rpartition(":")[2]: a for fq, a in libraries.items()}
            art["bytecode"] = link_bytecode(art["bytecode"], libraries, refs)
            art["deployedBytecode"] = link_bytecode(art["deployedBytecode"], libraries,
                                                    art.get("deployedLinkReferences", {}))
        art["networks"] = {str(chain_id): network}
        (out / f"{name}.json").write_text(json.dumps(art, indent=2))


class ComponentStatus(BaseModel):
    name: str
    healthy: bool
    detail: str


def status(devnet_file: Path | None = None) -> list[ComponentStatus]:
    path = devnet_file or default_devnet_file()
    info = DevnetInfo.load(path)
    out: list[ComponentStatus] = []

    def add(name: str, problem: str | None, ok: str) -> None:
        out.append(ComponentStatus(name=name, healthy=problem is None, detail=problem or ok))

    add("anvil", rpc_healthy(info.rpc_url), f"JSON-RPC {info.rpc_url} (chain {info.chain_id})")
    add("kubo", ipfs_healthy(info.ipfs_api), f"RPC API {info.ipfs_api}, gateway {info.ipfs_gateway}")
    add("registry", registry_healthy(info.registry), f"http://{info.registry}")
    add("docker", docker_healthy(), "engine answers")
    if out[0].healthy:
        w3 = connect(info.rpc_url)
        for name, address in info.contracts.items():
            code = w3.eth.get_code(address)  # type: ignore[arg-type]
            add(name, None if len(code) > 0 else f"no code at {address} (was the chain restarted?)", address)
    return out


def down(devnet_file: Path | None = None) -> list[str]:
    """Stop every component the devnet started; remove the devnet file. Returns what was stopped."""
    path = devnet_file or default_devnet_file()
    if not path.exists():
        return []
    stopped: list[str] = []
    try:
        info = DevnetInfo.load(path)
    except DevnetError:
        path.unlink()
        return ["(unreadable devnet file removed)"]
    for name in ("registry", "kubo", "anvil", "dockerd"):
        c = info.components.get(name)
        if c is not None and c.started:
            stop(c, timeout=20 if name == "dockerd" else 10)
            stopped.append(name)
    path.unlink(missing_ok=True)
    from oracle.network import DEVNET, load_profile, remove_profile

    with contextlib.suppress(TasknetError):
        if load_profile(DEVNET).rpc_url == info.rpc_url:  # this devnet's profile, not another one's
            remove_profile(DEVNET)
    return stopped
