"""The requester and app-owner SDK: money, apps, datasets, jobs, watching, results and explanations.

::

    from oracle import Client
    from oracle.client import JobSpec

    c = Client.from_devnet(role="requester")             # or Client.connect(rpc_url, marketplace=..., ...)
    c.deposit(10 * 10**18)
    job = c.submit_job(JobSpec(app_id=1, count=10, args=["{index}"], reward=10**17, encrypt=True))
    for ev in c.watch(job.job_id):                        # typed events, until every task settled
        print(ev.name, ev.task_index, ev.progress.finalized)
    results = c.results(job.job_id, "out/")              # downloaded, decrypted, digest-checked, unpacked

Every check that can be made before spending is made first (unknown app, access, balance, missing input
files, deadline too short): those raise a :class:`~oracle.exceptions.ClientError` and send nothing. A transaction
the contract refuses raises :class:`~oracle.exceptions.TransactionReverted` with the custom error decoded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from ._artifacts import abi
from ._chain import connect
from ._client_explain import explain_task
from ._client_indexer import IndexerApi
from ._client_keyring import Keyring
from ._client_models import (
    AppInfo,
    Balance,
    DatasetInfo,
    Explanation,
    FailureGroup,
    JobEvent,
    JobProgress,
    JobSpec,
    JobStatus,
    JobSummary,
    Reason,
    SubmittedJob,
    TaskFailure,
    TaskInput,
    TaskPage,
    TaskResult,
    TaskState,
    TxInfo,
    arch_mask,
    format_amount,
    parse_amount,
    parse_duration,
)
from ._client_results import ResultManifest
from ._client_scan import RESULT_EVENTS, JobResults, RawEvent, decode, job_events, raw_logs
from ._client_tasks import build_inputs, check_inputs, load_tasks, pack_folder, sha256_of
from ._client_watch import JOB_EVENTS, Tracker
from ._log import get_logger
from .archive import decrypt_file, sha256_file, unpack_result
from .canonical import (
    CanonicalizeStep,
    add_step,
    canonical_digest,
    canonical_tag,
    is_canonical_layout,
    read_step,
)
from .credibility import CredibilitySettings
from .devnet import DevnetInfo
from .events import EventStream, StreamCursor
from .exceptions import (
    AccessDenied,
    ClientError,
    ContentNotFound,
    InsufficientBalance,
    IntegrityError,
    InvalidJobSpec,
    PinningError,
    ProfileError,
    ResultNotReady,
    ResultUnavailable,
    TasknetError,
    UnknownApp,
    UnknownDataset,
    UnknownJob,
    WaitTimeout,
)
from .ipfs import IpfsClient
from .market import JobView, Market, _struct
from .models import AppMetadata, InputRef, InputsDocument
from .pinning import PinningClient, RemotePins, request_pin
from .protocol import ARCH_HOMOGENEOUS, platform_class_name, task_id
from .settings import Settings, check_network
from .status import read_status
from .tx import TxSender

if TYPE_CHECKING:
    import docker

__all__ = [
    "AppInfo", "Balance", "Client", "DatasetInfo", "Explanation", "FailureGroup", "JobEvent", "JobProgress",
    "JobSpec", "JobStatus", "JobSummary", "Reason", "SubmittedJob", "TaskFailure", "TaskInput", "TaskPage",
    "TaskResult", "TaskState", "TxInfo", "format_amount", "load_tasks", "parse_amount", "parse_duration",
]

log = get_logger("oracle.client")

#: chain ids where a raw private key is accepted (public dev chains)
DEV_CHAIN_IDS = {31337, 1337}
ZERO = "0x" + "00" * 20
UploadProgress = Callable[[str, int], None]
ByteProgress = Callable[[int], None]
TaskProgress = Callable[[TaskResult], None]
#: results downloaded at once by :meth:`Client.results` (each is an IPFS fetch, a decryption, an unpacking)
PARALLEL_DOWNLOADS = 4
#: reasons a task ends without a result, by state
NO_RESULT = {"failed": "no majority among the replicas at the replica cap; the escrow was refunded",
             "refunded": "not finished when the job closed; the escrow was refunded"}


def _tx(receipt: TxReceipt) -> TxInfo:
    return TxInfo(tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), block_number=receipt["blockNumber"],
                  gas_used=receipt["gasUsed"])


def _hex(value: Any) -> str:
    return value.removeprefix("0x") if isinstance(value, str) else bytes(value).hex()


class ResultPinner:
    """Pins result CIDs on the requester's node in the background (a few at a time): each pin fetches the
    result from whichever node provides it, then keeps it. With a ``remote`` pinning service, each result is then
    also asked of the service (``POST /pins``, this node's addresses as origins). ``close`` waits for the pins
    under way (and up to ``remote_wait`` seconds for the service to report them pinned or failed) and returns
    ``(pinned, failed)`` on this node; :attr:`remote` holds the service's tally. A failure is logged with its CID
    and reason, and never stops the watch."""

    def __init__(self, ipfs: IpfsClient, *, workers: int = 4, timeout: float = 300.0,
                 remote: PinningClient | None = None, remote_wait: float = 60.0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.ipfs, self.timeout = ipfs, timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tasknet-pin")
        self._seen: set[str] = set()
        self.pinned: list[str] = []
        self.failed: dict[str, str] = {}
        self._remote, self._remote_wait = remote, remote_wait
        self._requests: dict[str, str] = {}  # requestid -> CID
        self._origins: list[str] | None = None
        self.remote: RemotePins | None = RemotePins(endpoint=remote.endpoint) if remote is not None else None

    def add(self, cid: str, name: str | None = None) -> None:
        if cid and cid not in self._seen:
            self._seen.add(cid)
            self._pool.submit(self._pin, cid, name)

    def _pin(self, cid: str, name: str | None) -> None:
        try:
            self.ipfs.pin(cid, timeout=self.timeout)
            self.pinned.append(cid)
        except TasknetError as exc:
            self.failed[cid] = str(exc)
            log.warning("result_pin_failed", cid=cid, error=str(exc)[:300])
        if self._remote is not None:
            self._ask_service(self._remote, cid, name)

    def _ask_service(self, remote: PinningClient, cid: str, name: str | None) -> None:
        assert self.remote is not None
        try:
            if self._origins is None:
                self._origins = self.ipfs.multiaddrs()
            status = request_pin(remote, self.ipfs, cid, name=name, origins=self._origins)
            self._requests[status.requestid] = cid
        except TasknetError as exc:
            self.remote.failed[cid] = str(exc)
            log.warning("remote_pin_failed", cid=cid, endpoint=remote.endpoint, error=str(exc)[:300])

    def close(self) -> tuple[int, int]:
        self._pool.shutdown(wait=True)
        if self._remote is not None and self.remote is not None and self._requests:
            for rid, status in self._remote.wait_all(self._requests, timeout=self._remote_wait).items():
                cid = self._requests[rid]
                if isinstance(status, TasknetError):
                    self.remote.pending.append(cid)  # asked, and not known to have failed
                elif status.status == "pinned":
                    self.remote.pinned.append(cid)
                elif status.status == "failed":
                    self.remote.failed[cid] = f"the service reports request {rid} failed"
                else:
                    self.remote.pending.append(cid)
        return len(self.pinned), len(self.failed)


class Client:
    """One account talking to one marketplace, its IPFS node and (for app owners) a Docker engine."""

    def __init__(self, w3: Web3, account: LocalAccount, marketplace: str, ipfs: IpfsClient, *,
                 deploy_block: int = 0, image_registry: str | None = None, keyring: Keyring | str | Path | None = None,
                 docker_client: docker.DockerClient | None = None, pinning: PinningClient | None = None,
                 indexer_url: str | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.market = Market(w3, marketplace)
        self.ipfs = ipfs
        self.deploy_block = deploy_block
        self.image_registry = image_registry
        self.keyring = keyring if isinstance(keyring, Keyring) else Keyring(keyring)
        self._docker = docker_client
        self.sender = TxSender(w3, account, extra_abis=self.market.error_abis)
        self._events = w3.eth.contract(address=self.market.address, abi=abi("IMarketplace"))
        #: (pinned, failed) result CIDs of the last ``watch(pin=True)``
        self.pinned: tuple[int, int] = (0, 0)
        #: the network's remote pinning service (the profile's ``pinning_service``), asked to pin too
        self.pinning = pinning
        #: what that service made of the results of the last ``watch(pin=True)``
        self.remote_pins: RemotePins | None = None
        #: an indexer's API (``indexer_url``): job summaries and task pages come from it instead of the chain
        self.indexer = IndexerApi(indexer_url) if indexer_url else None

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_devnet(cls, role: str = "requester", devnet_file: str | Path | None = None, **kw: Any) -> Client:
        """A client for dev account ``role`` of the devnet described by ``devnet_file`` (default:
        ``$TASKNET_DEVNET_FILE``, else the file ``tasknet up`` writes)."""
        info = DevnetInfo.load(devnet_file or os.environ.get("TASKNET_DEVNET_FILE") or None)
        if "Marketplace" not in info.contracts:
            raise ClientError(f"the devnet file lists no Marketplace contract ({', '.join(info.contracts)}); "
                              "restart the devnet with 'tasknet down && tasknet up'")
        acct = Account.from_key(info.account(role).private_key)
        return cls(connect(info.rpc_url), acct, info.contracts["Marketplace"], IpfsClient(info.ipfs_api),
                   deploy_block=info.deploy_block, image_registry=info.registry, **kw)

    @classmethod
    def from_settings(cls, settings: Settings, *, prompt: Callable[[str], str] | None = None, **kw: Any) -> Client:
        """A client for the network and account ``settings`` name (see :func:`oracle.settings.resolve`): the node
        must serve the profile's chain and hold the marketplace's code; the key is the keystore, or on a dev chain
        a raw key or a devnet role."""
        if not settings.marketplace:
            raise ProfileError("no marketplace address: name a network (--network NAME, 'tasknet network list') or "
                               "give --rpc-url and --marketplace; on this machine, 'tasknet up' starts the devnet")
        w3 = connect(settings.rpc_url)
        check_network(settings, w3)
        account = settings.account(int(w3.eth.chain_id), prompt=prompt)
        kw.setdefault("keyring", settings.keyring)
        kw.setdefault("indexer_url", settings.indexer_url)
        ipfs = IpfsClient(settings.ipfs_api)
        ipfs.check_online()
        if settings.pinning_service is not None:
            kw.setdefault("pinning", PinningClient.from_service(settings.pinning_service))
        return cls(w3, account, settings.marketplace, ipfs, deploy_block=settings.deploy_block,
                   image_registry=settings.image_registry, **kw)

    @classmethod
    def connect(cls, rpc_url: str, *, marketplace: str, ipfs_api: str, keystore: str | Path | None = None,
                password: str | None = None, private_key: str | None = None, **kw: Any) -> Client:
        """A client for any EVM JSON-RPC endpoint: the key comes from an encrypted keystore (``password`` or
        ``$TASKNET_PASSWORD``) or, on a dev chain only, a raw ``private_key``."""
        w3 = connect(rpc_url)
        if keystore is not None:
            pw = password if password is not None else os.environ.get("TASKNET_PASSWORD")
            if pw is None:
                raise ClientError(f"keystore {keystore} needs a password: pass password= or set TASKNET_PASSWORD")
            try:
                key = Account.decrypt(json.loads(Path(keystore).read_text()), pw)
            except (OSError, ValueError) as exc:
                raise ClientError(f"cannot open keystore {keystore}: {exc}; check the path and the password") from exc
            acct = Account.from_key(key)
        elif private_key is not None:
            chain = int(w3.eth.chain_id)
            if chain not in DEV_CHAIN_IDS:
                raise ClientError(f"a raw private key is only accepted on a dev chain (ids {sorted(DEV_CHAIN_IDS)}); "
                                  f"chain {chain} needs an encrypted keystore (keystore=PATH)")
            acct = Account.from_key(private_key)
        else:
            raise ClientError("no key: pass keystore=PATH (+ password) or, on a dev chain, private_key=")
        if not Web3.is_address(marketplace) or not w3.eth.get_code(Web3.to_checksum_address(marketplace)):
            raise ClientError(f"no contract at marketplace address {marketplace} on {rpc_url}; check the address "
                              "and the chain")
        return cls(w3, acct, marketplace, IpfsClient(ipfs_api), **kw)

    def close(self) -> None:
        self.ipfs.close()
        if self.pinning is not None:
            self.pinning.close()
        if self.indexer is not None:
            self.indexer.close()
        if self._docker is not None:
            self._docker.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env()
                self._docker.ping()
            except Exception as exc:  # docker raises many types for "no engine"
                raise ClientError(f"no Docker engine answers ({exc}); start Docker or set DOCKER_HOST") from exc
        return self._docker

    def chain_time(self) -> int:
        """The chain's time (see :meth:`oracle.market.Market.chain_time`)."""
        return self.market.chain_time()

    def _send(self, fn: Any) -> TxReceipt:
        return self.sender.transact(fn)

    # -- money --------------------------------------------------------------------------------------
    def balance(self, address: str | None = None) -> Balance:
        who = Web3.to_checksum_address(address or self.address)
        token = self.market.token
        return Balance(address=who, wallet=int(token.functions.balanceOf(who).call()),
                       deposited=self.market.balance(who), staked=int(self.market.worker(who)["stake"]),
                       allowance=int(token.functions.allowance(who, self.market.address).call()))

    def deposit(self, amount: int, *, permit: bool = False) -> TxInfo:
        """Move ``amount`` wei of tokens from the wallet into the marketplace: ``approve`` + ``deposit`` (two
        transactions, the approval skipped when the allowance suffices), or with ``permit`` one transaction
        carrying an EIP-2612 signature."""
        if amount <= 0:
            raise ClientError(f"deposit amount must be positive, got {amount}")
        token = self.market.token
        wallet = int(token.functions.balanceOf(self.address).call())
        if wallet < amount:
            raise InsufficientBalance(
                f"the wallet of {self.address} holds {format_amount(wallet)} tokens, the deposit needs "
                f"{format_amount(amount)}; get tokens first (on the devnet: 'tasknet account faucet')")
        if permit:
            deadline = self.chain_time() + 3600
            v, r, s = self._sign_permit(amount, deadline)
            return _tx(self._send(self.market.contract.functions.depositWithPermit(amount, deadline, v, r, s)))
        if int(token.functions.allowance(self.address, self.market.address).call()) < amount:
            self._send(token.functions.approve(self.market.address, amount))
        return _tx(self._send(self.market.contract.functions.deposit(amount)))

    def _sign_permit(self, amount: int, deadline: int) -> tuple[int, bytes, bytes]:
        token = self.market.token
        _fields, name, version, chain_id, verifying, _salt, _ext = token.functions.eip712Domain().call()
        nonce = int(token.functions.nonces(self.address).call())
        msg = encode_typed_data(full_message={
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                 {"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                           {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                           {"name": "deadline", "type": "uint256"}],
            },
            "primaryType": "Permit",
            "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying},
            "message": {"owner": self.address, "spender": self.market.address, "value": amount, "nonce": nonce,
                        "deadline": deadline},
        })
        sig = self.account.sign_message(msg)
        return int(sig.v), int(sig.r).to_bytes(32, "big"), int(sig.s).to_bytes(32, "big")

    def withdraw(self, amount: int) -> TxInfo:
        """Send ``amount`` wei of the marketplace balance back to the wallet."""
        if amount <= 0:
            raise ClientError(f"withdraw amount must be positive, got {amount}")
        have = self.market.balance(self.address)
        if have < amount:
            raise InsufficientBalance(f"the marketplace balance of {self.address} is {format_amount(have)} tokens, "
                                      f"less than the {format_amount(amount)} asked; withdraw at most that (escrow "
                                      "locked by jobs comes back when they finish or are closed)")
        return _tx(self._send(self.market.contract.functions.withdraw(amount)))

    def faucet(self, amount: int) -> TxInfo:
        """Devnet only: mint ``amount`` wei of the test token to this account's wallet."""
        if self.market.chain_id not in DEV_CHAIN_IDS:
            raise ClientError(f"the faucet exists only on dev chains; chain {self.market.chain_id} has real tokens")
        return _tx(self._send(self.market.token.functions.faucet(self.address, amount)))

    # -- apps ---------------------------------------------------------------------------------------
    def build_app(self, context_dir: str | Path, tag: str, *, dockerfile: str = "Dockerfile") -> str:
        """``docker build`` an app (no network, FROM a local base image); return the image id."""
        from .images import build_app_image

        return build_app_image(self.docker, context_dir, tag, dockerfile=dockerfile)

    def push_image(self, image: str) -> str:
        """Push local image ``image`` to the image registry; return the pinned ``host/repo@sha256:…``."""
        from .images import push_to_registry

        if not self.image_registry:
            raise ClientError("no image registry configured; pass image_registry='host:port' (the devnet has one)")
        return push_to_registry(self.docker, image, self.image_registry)

    def register_app(self, image: str, *, name: str, price: int = 0, public: bool = True,
                     requesters: Sequence[str] = (), deterministic_file: str | None = None, description: str = "",
                     category: str | None = None, command: Sequence[str] = (), push: bool = True,
                     ipfs_archive: bool = False, canonicalize: CanonicalizeStep | None = None) -> AppInfo:
        """Register local image ``image`` as an app: pushed to the registry (``push``), pinned by its image id,
        with a metadata document on IPFS. A private app (``public=False``) admits ``requesters`` only.

        With ``ipfs_archive`` a ``docker save`` archive of the image (untagged) is added to IPFS too and named in
        the metadata: workers load it when the registry cannot serve them. Without a registry push the app's
        image reference is then ``ipfs://CID`` itself, and workers need no registry at all.

        ``canonicalize`` declares the app's canonicalise step (:mod:`oracle.canonical`): unless ``image`` declares
        exactly that step already, a thin image adding its labels is built on top (tagged by
        :func:`oracle.canonical.canonical_tag`) and registered instead: its id is the app's digest."""
        from .images import image_digest, save_image

        if canonicalize is not None and read_step(self.docker, image) != canonicalize:
            tag = canonical_tag(image)
            add_step(self.docker, image, canonicalize, tag)
            image = tag

        digest = image_digest(self.docker, image)
        ref = image
        if push and self.image_registry and "@sha256:" not in image:
            ref = self.push_image(image)
        archive_cid = None
        if ipfs_archive:
            with tempfile.TemporaryDirectory(prefix="tasknet-image-") as tmp:
                save_image(self.docker, digest, Path(tmp) / "image.tar")
                archive_cid = self.ipfs.add_file(Path(tmp) / "image.tar")
            if ref == image:
                ref = f"ipfs://{archive_cid}"
        meta = AppMetadata(name=name, description=description, image=ref, command=list(command),
                           deterministic_file=deterministic_file, category=category, image_archive_cid=archive_cid)
        meta_uri = "ipfs://" + self.ipfs.add_json(meta.model_dump(mode="json", exclude_none=True))
        receipt = self._send(self.market.registry.functions.registerApp(
            ref, bytes.fromhex(digest.removeprefix("sha256:")), meta_uri, price, public, deterministic_file or ""))
        app_id = int(self.market.registry.events.AppRegistered().process_receipt(receipt, errors=DISCARD)[0][
            "args"]["appId"])
        if requesters:
            self.set_app_requesters(app_id, requesters)
        log.info("app_registered", app_id=app_id, ref=ref, digest=digest)
        return self.app(app_id)

    def update_app(self, app_id: int, *, price: int | None = None, public: bool | None = None,
                   metadata_uri: str | None = None) -> AppInfo:
        cur = self.app(app_id)
        self._send(self.market.registry.functions.updateApp(
            app_id, cur.metadata_uri if metadata_uri is None else metadata_uri,
            cur.price if price is None else price, cur.public if public is None else public))
        return self.app(app_id)

    def set_app_requesters(self, app_id: int, requesters: Sequence[str], allowed: bool = True) -> TxInfo:
        addrs = [self._address(a) for a in requesters]
        return _tx(self._send(self.market.registry.functions.setAppRequesters(app_id, addrs, allowed)))

    def deprecate_app(self, app_id: int) -> TxInfo:
        return _tx(self._send(self.market.registry.functions.deprecateApp(app_id)))

    def app(self, app_id: int) -> AppInfo:
        """The app's current state (registry storage + its registration and update events)."""
        raw = _struct(self.market.registry, "getApp", app_id)
        if int(raw["owner"], 16) == 0:
            raise UnknownApp(f"no app {app_id} on this marketplace ({self._app_range()}); list them with "
                             "'tasknet app list'")
        reg = self._registry_logs("AppRegistered", appId=app_id)
        if not reg:
            raise UnknownApp(f"app {app_id} exists but its AppRegistered event is not found after block "
                             f"{self.deploy_block}; is the deploy block right?")
        a = reg[-1]["args"]
        updates = self._registry_logs("AppUpdated", appId=app_id)
        meta = updates[-1]["args"]["metadataURI"] if updates else a["metadataURI"]
        return AppInfo(app_id=app_id, owner=raw["owner"], image_ref=a["imageRef"],
                       image_digest="sha256:" + _hex(raw["imageDigest"]), metadata_uri=meta, price=int(raw["price"]),
                       public=bool(raw["flags"] & 1), deprecated=bool(raw["flags"] & 2),
                       deterministic_file=a["deterministicFile"])

    def apps(self, owner: str | None = None) -> list[AppInfo]:
        filters = {"owner": self._address(owner)} if owner else {}
        return [self.app(int(e["args"]["appId"])) for e in self._registry_logs("AppRegistered", **filters)]

    # -- datasets -----------------------------------------------------------------------------------
    def add_dataset(self, path: str | Path, *, price: int = 0, any_requester: bool = True, any_app: bool = True,
                    requesters: Sequence[str] = (), apps: Sequence[int] = (),
                    progress: UploadProgress | None = None, remote_wait: float = 60.0) -> DatasetInfo:
        """Upload a file (as is) or a folder (as a canonical tar) to IPFS, checksum it, register it.

        Jobs using the dataset see it at ``/in/dataset`` (:attr:`JobSpec.dataset_path`). When the network names a
        pinning service (:attr:`pinning`), it is asked to pin the dataset before anything is sent to the chain (a
        refusal, e.g. a bad token, stops here), then polled for up to ``remote_wait`` seconds: the result's
        ``remote_pin`` is its last status.
        """
        p = Path(path)
        if not p.exists():
            raise ClientError(f"dataset {p} does not exist; give a file or a folder")
        with tempfile.TemporaryDirectory(prefix="tasknet-dataset-") as tmp:
            blob, kind = p, "file"
            if p.is_dir():
                blob, kind = Path(tmp) / (p.name + ".tar"), "folder"
                pack_folder(p, blob)
            checksum = sha256_of(blob)
            size = blob.stat().st_size
            cid = self.ipfs.add_file(blob)
            if progress is not None:
                progress(p.name, size)
        remote = request_pin(self.pinning, self.ipfs, cid, name=f"tasknet dataset {p.name}") \
            if self.pinning is not None else None
        receipt = self._send(self.market.registry.functions.registerDataset(
            cid, bytes.fromhex(checksum), size, price, any_requester, any_app))
        ds_id = int(self.market.registry.events.DatasetRegistered().process_receipt(receipt, errors=DISCARD)[0][
            "args"]["datasetId"])
        if requesters:
            self._send(self.market.registry.functions.setDatasetRequesters(
                ds_id, [self._address(a) for a in requesters], True))
        if apps:
            self._send(self.market.registry.functions.setDatasetApps(ds_id, list(apps), True))
        info = self.dataset(ds_id)
        if remote is not None and self.pinning is not None:
            try:  # registered already: a service that stops answering now is reported, not raised
                remote = self.pinning.wait(remote.requestid, timeout=remote_wait)
            except PinningError as exc:
                log.warning("dataset_remote_pin_unknown", dataset_id=ds_id, cid=cid, error=str(exc)[:300])
            log.info("dataset_remote_pin", dataset_id=ds_id, cid=cid, status=remote.status)
        return info.model_copy(update={"size": size, "kind": kind, "remote_pin": remote})

    def dataset(self, dataset_id: int) -> DatasetInfo:
        raw = _struct(self.market.registry, "getDataset", dataset_id)
        if int(raw["owner"], 16) == 0:
            raise UnknownDataset(f"no dataset {dataset_id} on this marketplace; list them with 'tasknet dataset list'")
        ev = self._registry_logs("DatasetRegistered", datasetId=dataset_id)
        cid = ev[-1]["args"]["cid"] if ev else ""
        flags = int(raw["flags"])
        return DatasetInfo(dataset_id=dataset_id, owner=raw["owner"], cid=cid, checksum=_hex(raw["checksum"]),
                           price=int(raw["price"]), any_requester=bool(flags & 1), any_app=bool(flags & 4),
                           deprecated=bool(flags & 2))

    def datasets(self, owner: str | None = None) -> list[DatasetInfo]:
        filters = {"owner": self._address(owner)} if owner else {}
        return [self.dataset(int(e["args"]["datasetId"])) for e in self._registry_logs("DatasetRegistered", **filters)]

    # -- jobs ---------------------------------------------------------------------------------------
    def quote(self, spec: JobSpec) -> int:
        """The escrow ``spec`` would lock: N × (R × reward + app price + dataset price), checked for access."""
        app = _struct(self.market.registry, "getApp", spec.app_id)
        if int(app["owner"], 16) == 0:
            raise UnknownApp(f"no app {spec.app_id} on this marketplace ({self._app_range()}); list them with "
                             "'tasknet app list'")
        if app["flags"] & 2:
            raise AccessDenied(f"app {spec.app_id} is deprecated: no new job may use it; pick another app")
        if not self.market.registry.functions.appAllows(spec.app_id, self.address).call():
            raise AccessDenied(f"app {spec.app_id} is private and does not list requester {self.address}; ask its "
                               f"owner {app['owner']} to allow you ('tasknet app allow')")
        ds_price = 0
        if spec.dataset_id:
            ds = _struct(self.market.registry, "getDataset", spec.dataset_id)
            if int(ds["owner"], 16) == 0:
                raise UnknownDataset(f"no dataset {spec.dataset_id} on this marketplace; list them with "
                                     "'tasknet dataset list'")
            if ds["flags"] & 2:
                raise AccessDenied(f"dataset {spec.dataset_id} is deprecated: no new job may use it")
            if not self.market.registry.functions.datasetAllows(spec.dataset_id, spec.app_id, self.address).call():
                raise AccessDenied(f"dataset {spec.dataset_id} does not admit app {spec.app_id} run by {self.address}; "
                                   f"ask its owner {ds['owner']} to allow this app and requester")
            ds_price = int(ds["price"])
        return spec.num_tasks * (spec.replication * spec.reward + int(app["price"]) + ds_price)

    def submit_job(self, spec: JobSpec, *, progress: UploadProgress | None = None) -> SubmittedJob:
        """Check, upload inputs, write the inputs document, post the job; return its id and escrow."""
        params = self.market.params()
        if spec.replication > int(params["maxReplicas"]):
            raise InvalidJobSpec(f"replication {spec.replication} exceeds the marketplace's cap of "
                                 f"{params['maxReplicas']}")
        grace = int(params["claimGrace"])
        if spec.max_run_seconds + grace >= spec.deadline_in:
            raise InvalidJobSpec(
                f"deadline in {spec.deadline_in} s is too short: a claim needs max run {spec.max_run_seconds} s + "
                f"claim grace {grace} s before the deadline; give at least {spec.max_run_seconds + grace + 60} s")
        mask = arch_mask(spec.arch) | (ARCH_HOMOGENEOUS if spec.homogeneous else 0)
        callback = ZERO
        if spec.callback:
            callback = self._address(spec.callback)
            if not self.w3.eth.get_code(callback):  # type: ignore[arg-type]
                raise InvalidJobSpec(f"callback {callback} is not a contract; deploy your ITaskCallback contract "
                                     "first (see examples/consumer)")
        check_inputs(spec.tasks or [], spec.common_inputs)
        escrow = self.quote(spec)
        have = self.market.balance(self.address)
        if have < escrow:
            raise InsufficientBalance(
                f"the job locks {format_amount(escrow)} tokens ({spec.num_tasks} tasks × ({spec.replication} × reward "
                f"{format_amount(spec.reward)} + app/dataset prices)) but the marketplace balance of {self.address} "
                f"is {format_amount(have)}; deposit {format_amount(escrow - have)} more ('tasknet account deposit')")
        extra: list[InputRef] = []
        if spec.dataset_id:
            ds = self.dataset(spec.dataset_id)
            extra.append(InputRef(uri=f"ipfs://{ds.cid}", path=spec.dataset_path, size=None))
        key = self.keyring.new_key() if spec.encrypt else ""
        _doc, inputs_cid = build_inputs(self.ipfs, spec.tasks, spec.count, spec.args, spec.common_inputs, extra,
                                        progress)
        deadline = self.chain_time() + spec.deadline_in
        p = (spec.app_id, spec.dataset_id, spec.num_tasks, spec.replication, spec.reward, deadline,
             spec.max_run_seconds, spec.cores, spec.memory_mb, spec.gpus, mask, spec.min_reputation, callback,
             inputs_cid, bytes.fromhex(key))
        if spec.confidence is None:
            receipt = self._send(self.market.contract.functions.postJob(p))
        else:
            c = CredibilitySettings.of(spec.confidence, spec.assume_faulty, spec.spot_check)
            receipt = self._send(self.market.contract.functions.postCredibilityJob(
                p, (c.confidence_ppb, c.fault_bps, c.spot_check_bps)))
        ev = self._events.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]
        job_id = int(ev["jobId"])
        if key:
            self.keyring.note_job(key, job_id)
        log.info("job_posted", job_id=job_id, tasks=spec.num_tasks, escrow=int(ev["escrow"]), inputs=inputs_cid,
                 confidence=spec.confidence)
        return SubmittedJob(job_id=job_id, num_tasks=spec.num_tasks, inputs_cid=inputs_cid, escrow=int(ev["escrow"]),
                            deadline=deadline, encryption_key=key, tx=_tx(receipt))

    def _posted(self, job_id: int) -> tuple[dict[str, Any], int]:
        logs = self._events.events.JobPosted().get_logs(from_block=self.deploy_block,
                                                        argument_filters={"jobId": job_id})
        if not logs:
            count = int(self.market.contract.functions.jobCount().call())
            known = f"jobs are numbered 1..{count}" if count else "no job was posted yet"
            raise UnknownJob(f"no job {job_id} on this marketplace ({known}); list yours with 'tasknet job list'")
        return dict(logs[0]["args"]), int(logs[0]["blockNumber"])

    def _job_events(self, job_id: int, from_block: int, names: Sequence[str]) -> list[RawEvent]:
        """The job's ``names`` events from ``from_block`` (its posting) to the head: one pass over the logs of
        those event types, decoded only for this job (see :mod:`oracle._client_scan`)."""
        return job_events(self.w3, self.market.address, job_id, names, from_block, int(self.w3.eth.block_number))

    def _tracker(self, job_id: int) -> tuple[Tracker, dict[str, Any], int]:
        """Every task's state, from one pass over the job's events (a whole job: for per-task views)."""
        posted, block = self._posted(job_id)
        view = JobView.from_event(posted)
        t = Tracker(job_id=job_id, total=view.num_tasks, replication=view.replication)
        names = [n for n in JOB_EVENTS if hasattr(Tracker, f"_on_{n}")]
        for ev in self._job_events(job_id, block, names):
            t.fold(ev.name, ev.args)
        return t, posted, block

    def _cancelled(self, job_id: int, from_block: int) -> list[tuple[int, int]]:
        """The job's cancelled ranges (first index, count): its TasksCancelled events, found by their jobId."""
        out = []
        for log in raw_logs(self.w3, self.market.address, ["TasksCancelled"], from_block,
                            int(self.w3.eth.block_number), topic1="0x" + job_id.to_bytes(32, "big").hex()):
            ev = decode(log)
            if ev is not None:
                out.append((int(ev.args["firstIndex"]), int(ev.args["count"])))
        return out

    # -- summaries and pages ------------------------------------------------------------------------
    def job_summary(self, job_id: int) -> JobSummary:
        """Where the job stands, in time that does not depend on its size: the indexer's job row when an indexer
        is configured, else the chain's counters (``getJob``, ``jobEscrow``) plus the job's cancellations and
        the TaskFailed events since its posting (rare: they say which tasks failed)."""
        if self.indexer is not None:
            return self._indexer_summary(job_id)
        posted, block = self._posted(job_id)
        v = JobView.from_event(posted)
        raw = self.market.job(job_id)
        closed = bool(int(raw["flags"]) & 1)
        cancelled = sum(n for _, n in self._cancelled(job_id, block))
        failed = sorted(JobResults.from_events(self._job_events(job_id, block, ["TaskFailed"])).failed)
        finalized = int(raw["finished"])
        refunded = max(0, v.num_tasks - finalized - len(failed) - cancelled) if closed else 0
        groups = [FailureGroup(state="failed", reason=NO_RESULT["failed"], count=len(failed), first=failed[:20])]
        groups.append(FailureGroup(state="refunded", reason=NO_RESULT["refunded"], count=refunded))
        return JobSummary(job_id=job_id, source="chain", requester=v.requester, app_id=v.app_id, total=v.num_tasks,
                          replication=v.replication, reward=v.reward, deadline=v.deadline, closed=closed,
                          escrow_left=int(self.market.contract.functions.jobEscrow(job_id).call()),
                          finalized=finalized, failed=len(failed), cancelled=cancelled, refunded=refunded,
                          unsettled=0 if closed else v.num_tasks - int(raw["settled"]),
                          failures=[g for g in groups if g.count])

    def _indexer_summary(self, job_id: int) -> JobSummary:
        assert self.indexer is not None
        j = self.indexer.job(job_id)
        running = sum(int(self.indexer.tasks(job_id, status=s, limit=1)["total"]) for s in ("running", "revealing"))
        failed_rows = self.indexer.tasks(job_id, status="failed", limit=20)
        total, finished, failed, cancelled = (int(j[k]) for k in ("num_tasks", "finished", "failed", "cancelled"))
        closed = j["status"] == "closed"
        refunded = max(0, total - finished - failed - cancelled) if closed else 0
        groups = [FailureGroup(state="failed", reason=NO_RESULT["failed"], count=failed,
                               first=[int(t["idx"]) for t in failed_rows["items"]]),
                  FailureGroup(state="refunded", reason=NO_RESULT["refunded"], count=refunded)]
        return JobSummary(job_id=job_id, source="indexer", requester=j["requester"], app_id=int(j["app_id"]),
                          total=total, replication=int(j["replication"]), reward=int(j["reward"]),
                          deadline=int(j["deadline"]), closed=closed, escrow_left=int(j["escrow_held"]),
                          finalized=finished, failed=failed, cancelled=cancelled, refunded=refunded,
                          unsettled=0 if closed else total - int(j["settled"]), claimed=int(j["claimed"]),
                          running=running, failures=[g for g in groups if g.count])

    def task_page(self, job_id: int, *, state: str | None = None, page: int = 1, per_page: int = 50) -> TaskPage:
        """One page (from 1) of the job's per-task rows, in task order; only those in ``state`` when given.

        From an indexer when one is configured (its rows: tasks appear there at their first claim). From the
        chain, a page of every task costs one log query and one call for its tasks, whatever the job's size;
        ``state="failed"`` or ``"cancelled"`` reads those few events; any other state needs every task's state
        (one pass over the job's events)."""
        if page < 1 or per_page < 1:
            raise ClientError(f"pages are numbered from 1 and hold at least one row (page {page}, {per_page} rows)")
        first = (page - 1) * per_page
        if self.indexer is not None and state not in ("cancelled", "refunded"):
            indexer_state = {"claimed": "running", "committing": "revealing"}.get(state or "", state)
            rows = self.indexer.tasks(job_id, status=indexer_state, limit=per_page, offset=first)
            items = [_indexer_row(r) for r in rows["items"]]
            return TaskPage(job_id=job_id, source="indexer", state=state, page=page, per_page=per_page,
                            total=int(rows["total"]), items=items)
        posted, block = self._posted(job_id)
        v = JobView.from_event(posted)
        if state is None:
            indexes = list(range(first, min(v.num_tasks, first + per_page)))
            return TaskPage(job_id=job_id, source="chain", state=None, page=page, per_page=per_page,
                            total=v.num_tasks, items=self._task_rows(job_id, v, block, indexes))
        if state == "failed":
            matching = sorted(JobResults.from_events(self._job_events(job_id, block, ["TaskFailed"])).failed)
        elif state == "cancelled":
            matching = sorted({i for start, n in self._cancelled(job_id, block) for i in range(start, start + n)})
        else:
            t, _, _ = self._tracker(job_id)
            states = [r for r in (t.task_state(i) for i in range(t.total)) if r.state == state]
            return TaskPage(job_id=job_id, source="chain", state=state, page=page, per_page=per_page,
                            total=len(states), items=states[first:first + per_page])
        return TaskPage(job_id=job_id, source="chain", state=state, page=page, per_page=per_page,
                        total=len(matching),
                        items=self._task_rows(job_id, v, block, matching[first:first + per_page]))

    def _task_rows(self, job_id: int, v: JobView, block: int, indexes: list[int]) -> list[TaskState]:
        """The state of a few tasks from the chain: their own events (one log query filtered on their ids), whether
        each is taken (R = 1, one batched call), the job's cancellations and whether it closed."""
        if not indexes:
            return []
        tids = [task_id(job_id, i) for i in indexes]
        names = ["ResultSubmitted", "ReplicaClaimed", "ClaimExpired", "ResultRevealed", "TaskFinalized",
                 "TaskFailed", "ClaimAbandoned", "FailureReported", "FailureConfirmed"]
        events = [e for e in (decode(log) for log in raw_logs(
            self.w3, self.market.address, names, block, int(self.w3.eth.block_number),
            topic1=["0x" + t.to_bytes(32, "big").hex() for t in tids])) if e is not None]
        results = JobResults.from_events(events)
        claimed: dict[int, list[str]] = {}
        revealed: set[int] = set()
        for e in events:
            index = int(e.args["taskId"]) & 0xFFFFFFFF
            if e.name == "ReplicaClaimed":
                claimed.setdefault(index, []).append(str(e.args["worker"]))
            elif e.name in ("ClaimExpired", "ClaimAbandoned") and str(e.args["worker"]) in claimed.get(index, []):
                claimed[index].remove(str(e.args["worker"]))
            elif e.name == "ResultRevealed":
                revealed.add(index)
        taken: dict[int, bool] = {}
        if v.replication == 1:
            c = self.market.contract
            answers = c.functions.multicall([c.encode_abi("isTaken", [t]) for t in tids]).call()
            taken = {i: bool(int.from_bytes(bytes(a)[-32:], "big")) for i, a in zip(indexes, answers, strict=True)}
        cancelled = {i for start, n in self._cancelled(job_id, block) for i in range(start, start + n)}
        closed = bool(int(self.market.job(job_id)["flags"]) & 1)
        rows = []
        for i in indexes:
            workers = results.workers.get(i) or claimed.get(i, [])
            if i in results.digests:
                cids = results.cids.get(i) or []
                rows.append(TaskState(index=i, state="finalized", workers=workers, digest=results.digests[i],
                                      cid=cids[0] if cids else None))
            elif i in results.failed:
                rows.append(TaskState(index=i, state="failed", workers=workers))
            elif i in cancelled:
                rows.append(TaskState(index=i, state="cancelled"))
            elif closed:
                rows.append(TaskState(index=i, state="refunded", workers=workers))
            elif (taken.get(i) if v.replication == 1 else bool(claimed.get(i))):
                rows.append(TaskState(index=i, state="committing" if i in revealed else "claimed", workers=workers))
            else:
                rows.append(TaskState(index=i, state="open", workers=workers))
        return rows

    def job(self, job_id: int) -> JobStatus:
        """The job's parameters, escrow left and progress (from storage and its events)."""
        t, posted, block = self._tracker(job_id)
        return self._status(job_id, posted, block, t.progress())

    def _status(self, job_id: int, posted: dict[str, Any], block: int, progress: JobProgress) -> JobStatus:
        v = JobView.from_event(posted)
        raw = self.market.job(job_id)
        return JobStatus(**v.model_dump(exclude={"closed"}),
                         escrow_left=int(self.market.contract.functions.jobEscrow(job_id).call()),
                         closed=bool(int(raw["flags"]) & 1), posted_block=block, progress=progress)

    def jobs(self, requester: str | None = None) -> list[JobStatus]:
        """Jobs posted by ``requester`` (default: this account), oldest first."""
        who = self._address(requester or self.address)
        logs = self._events.events.JobPosted().get_logs(from_block=self.deploy_block,
                                                        argument_filters={"requester": who})
        return [self.job(int(e["args"]["jobId"])) for e in logs]

    def tasks(self, job_id: int) -> list[TaskState]:
        t, _posted, _block = self._tracker(job_id)
        return [t.task_state(i) for i in range(t.total)]

    def watch(self, job_id: int, *, poll_interval: float = 0.25, timeout: float | None = None,
              confirmations: int = 0, pin: bool = False, remote_wait: float = 60.0) -> Iterator[JobEvent]:
        """Typed events of the job from its posting on, live, until every task settled or the job closed.

        Raises :class:`WaitTimeout` if ``timeout`` seconds pass first. Reorg-aware: on a reorg the progress is
        rebuilt from the posting block (events already yielded are not repeated unless they changed). With
        ``pin``, every result CID is pinned on this client's IPFS node as it lands (in the background), so the
        results stay available when the worker that made them leaves the network; when the network names a
        pinning service (:attr:`pinning`), it is asked to pin each result too, and :attr:`remote_pins` says, at the
        end, what it made of them (after waiting up to ``remote_wait`` seconds for it).
        """
        pinner = ResultPinner(self.ipfs, remote=self.pinning, remote_wait=remote_wait) if pin else None
        try:
            yield from self._watch(job_id, poll_interval, timeout, confirmations, pinner)
        finally:
            if pinner is not None:
                self.pinned = pinner.close()
                self.remote_pins = pinner.remote

    def _watch(self, job_id: int, poll_interval: float, timeout: float | None, confirmations: int,
               pinner: ResultPinner | None) -> Iterator[JobEvent]:
        posted, block = self._posted(job_id)
        view = JobView.from_event(posted)

        def fresh() -> Tracker:
            return Tracker(job_id=job_id, total=view.num_tasks, replication=view.replication)

        tracker = fresh()
        stream = EventStream(self.w3, [self.market.address], [abi("IMarketplace")], StreamCursor(next_block=block),
                             confirmations=confirmations, batch=5000)
        seen: set[tuple[str, int]] = set()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            reorg, events = stream.poll()
            if reorg is not None:
                tracker = fresh()
                stream.cursor = StreamCursor(next_block=block)
                continue
            for ev in events:
                out = tracker.apply(ev)
                if pinner is not None and out is not None and ev.name in ("ResultSubmitted", "ResultRevealed", "FailureReported"):
                    pinner.add(str(ev.args["resultCID"]), name=f"tasknet job {job_id} task {out.task_index}")
                if out is not None and (ev.tx_hash, ev.log_index) not in seen:
                    seen.add((ev.tx_hash, ev.log_index))
                    yield out
            if tracker.progress().done:
                return
            if events and stream.cursor.next_block <= self.w3.eth.block_number - confirmations:
                continue  # still catching up
            if end is not None and time.monotonic() > end:
                p = tracker.progress()
                raise WaitTimeout(f"job {job_id} is not finished after {timeout:.0f} s ({p.finalized}/{p.total} "
                                  f"finalized, {p.running} running); see why with 'tasknet job explain {job_id}'")
            time.sleep(poll_interval)

    def wait(self, job_id: int, *, timeout: float | None = None, poll_interval: float = 0.25) -> JobStatus:
        """Block until every task of the job settled (or it closed); return its status."""
        for _ev in self.watch(job_id, poll_interval=poll_interval, timeout=timeout):
            pass
        return self.job(job_id)

    def cancel(self, job_id: int, first: int = 0, count: int | None = None) -> tuple[int, int]:
        """Cancel the job's unclaimed tasks in ``first .. first+count-1`` (default: all of them); refunds their
        escrow at once. Returns (tasks cancelled, tokens refunded)."""
        t, posted, _block = self._tracker(job_id)
        if self._address(posted["requester"]) != self.address:
            raise AccessDenied(f"job {job_id} belongs to {posted['requester']}, not {self.address}; only its "
                               "requester may cancel it")
        if t.closed:
            raise ClientError(f"job {job_id} is already closed: nothing left to cancel")
        last = t.total if count is None else min(t.total, first + count)
        # R = 1: an expired lease reopens its tasks; R > 1: a task once claimed stays taken
        busy = (t.claimed if t.replication > 1 else t.running) | t.cancelled | t.finalized | t.failed
        ranges: list[tuple[int, int]] = []
        for i in range(first, last):
            if i in busy:
                continue
            if ranges and ranges[-1][0] + ranges[-1][1] == i:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
            else:
                ranges.append((i, 1))
        cancelled = refund = 0
        for start, n in ranges:
            receipt = self._send(self.market.contract.functions.cancelTasks(job_id, start, n))
            for ev in self._events.events.TasksCancelled().process_receipt(receipt, errors=DISCARD):
                cancelled += int(ev["args"]["count"])
                refund += int(ev["args"]["refund"])
        return cancelled, refund

    def close_job(self, job_id: int) -> int:
        """After the deadline: refund every unfinished task (and pay the owners). Returns the refund."""
        status = self.job(job_id)
        if status.closed:
            raise ClientError(f"job {job_id} is already closed")
        now = self.chain_time()
        if now <= status.deadline:
            raise ClientError(f"job {job_id}'s deadline is in {status.deadline - now} s; close it after that, or "
                              f"cancel its unclaimed tasks now with 'tasknet job cancel {job_id}'")
        receipt = self._send(self.market.contract.functions.closeJob(job_id))
        evs = self._events.events.JobClosed().process_receipt(receipt, errors=DISCARD)
        return int(evs[0]["args"]["refund"]) if evs else 0

    # -- results ------------------------------------------------------------------------------------
    def results(self, job_id: int, dest: str | Path | None, *, indexes: Sequence[int] | None = None,
                progress: ByteProgress | None = None, max_bytes: int = 4 << 30, on_task: TaskProgress | None = None,
                on_total: Callable[[int], None] | None = None, parallel: int = PARALLEL_DOWNLOADS
                ) -> list[TaskResult]:
        """Download each finished task's result from IPFS, decrypt it (keyring), check it against the digest
        the chain finalized, and unpack it to ``dest/<index>/`` (``output/`` and ``logs/``).

        The job's results are found by one pass over its result events (no call per task); ``parallel`` results
        are fetched at a time. With a ``dest``, each verified result is noted in ``dest/.tasknet-results.jsonl``
        and a later call skips the tasks noted there with the same digest (``TaskResult.resumed``): an
        interrupted download resumes where it stopped. ``on_total`` is told how many tasks there are, ``on_task``
        is called as each is done (resumed ones included). With ``dest=None`` the results are verified only.

        Raises :class:`IntegrityError` on a mismatch and :class:`ResultNotReady` for a requested task without a
        final result (after every other requested task was fetched: those are kept and noted).
        """
        posted, block = self._posted(job_id)
        v = JobView.from_event(posted)
        found = JobResults.from_events(self._job_events(job_id, block, RESULT_EVENTS))
        wanted = list(indexes) if indexes is not None else sorted(found.digests)
        for i in wanted:
            if not 0 <= i < v.num_tasks:
                raise ClientError(f"job {job_id} has tasks 0..{v.num_tasks - 1}; there is no task {i}")
            if i not in found.digests:
                state = self._task_rows(job_id, v, block, [i])[0].state
                hint = (f"'tasknet job watch {job_id}' waits for it, 'tasknet job explain {job_id} --task {i}' says "
                        "why it is not done") if state in ("open", "claimed", "committing") else \
                    "it will never have one (its escrow was refunded)"
                raise ResultNotReady(f"task {i} of job {job_id} is {state}, with no final result; {hint}")
        folder = None if dest is None else Path(dest)
        manifest = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            manifest = ResultManifest(folder, job_id, self.market.address)
        out: dict[int, TaskResult] = {}
        todo = []
        if on_total is not None:
            on_total(len(wanted))
        for i in wanted:
            digest = found.digests[i].removeprefix("0x")
            if manifest is not None and manifest.verified(i, digest):
                out[i] = manifest.resumed(i)
                if on_task is not None:
                    on_task(out[i])
            else:
                todo.append(i)
        if todo:
            app = self.app(v.app_id)
            out.update(self._fetch_all(job_id, todo, found, v.encryption_key, app, folder, manifest, progress,
                                       max_bytes, on_task, parallel))
        return [out[i] for i in wanted]

    def _fetch_all(self, job_id: int, todo: list[int], found: JobResults, key: str, app: AppInfo, dest: Path | None,
                   manifest: ResultManifest | None, progress: ByteProgress | None, max_bytes: int,
                   on_task: TaskProgress | None, parallel: int) -> dict[int, TaskResult]:
        """Fetch ``todo`` ``parallel`` at a time; the first failure (in task order) is raised once the fetches
        under way ended, the others are kept (and noted in the manifest)."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        out: dict[int, TaskResult] = {}
        errors: dict[int, TasknetError] = {}
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="tasknet-result") as pool:
            futures = {pool.submit(self._fetch, job_id, i, found.digests[i].removeprefix("0x"), found.cids.get(i, []),
                                   key, app, dest, progress, max_bytes): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    out[i] = fut.result()
                except TasknetError as exc:
                    errors[i] = exc
                    for other in futures:
                        other.cancel()  # those not started: a rerun resumes them
                    continue
                if manifest is not None:
                    manifest.add(out[i])
                if on_task is not None:
                    on_task(out[i])
        if errors:
            raise errors[min(errors)]
        return out

    def failures(self, job_id: int) -> list[TaskFailure]:
        """The job's tasks that the chain failed (no majority at the replica cap) or refunded (the job closed
        first): they have no result. Tasks the requester cancelled are not failures. (Tasks whose app failed have a
        result: see ``TaskResult.outcome``.) From the job's result events and its cancellations, in one pass."""
        posted, block = self._posted(job_id)
        v = JobView.from_event(posted)
        found = JobResults.from_events(self._job_events(job_id, block, RESULT_EVENTS))
        out = [TaskFailure(index=i, state="failed", reason=NO_RESULT["failed"]) for i in found.failed]
        if int(self.market.job(job_id)["flags"]) & 1:
            settled = set(found.digests) | found.failed
            settled |= {i for start, n in self._cancelled(job_id, block) for i in range(start, start + n)}
            out += [TaskFailure(index=i, state="refunded", reason=NO_RESULT["refunded"])
                    for i in range(v.num_tasks) if i not in settled]
        return sorted(out, key=lambda f: f.index)

    def verify(self, job_id: int, indexes: Sequence[int] | None = None) -> list[TaskResult]:
        """Download and check results against the chain without keeping them."""
        return self.results(job_id, None, indexes=indexes)

    def _fetch(self, job_id: int, index: int, digest: str, cids: list[str], encryption_key: str, app: AppInfo,
               dest: Path | None, progress: ByteProgress | None, max_bytes: int) -> TaskResult:
        if not cids:
            raise ResultNotReady(f"task {index} of job {job_id} is finalized but no revealed CID matches its digest")
        errors: list[str] = []
        missing: list[str] = []
        for cid in cids:
            with tempfile.TemporaryDirectory(prefix=".tasknet-result-", dir=dest) as tmp:
                blob = Path(tmp) / "blob"
                try:
                    self.ipfs.cat_to(cid, blob, max_bytes=max_bytes, progress=progress)
                except ContentNotFound:
                    missing.append(cid)
                    continue
                archive = blob
                if encryption_key:
                    archive = Path(tmp) / "result.tar"
                    decrypt_file(blob, archive, self.keyring.private_key(encryption_key))
                unpacked = Path(tmp) / "unpacked"
                try:
                    stats = unpack_result(archive, unpacked, max_bytes=max_bytes)
                except TasknetError as exc:
                    errors.append(f"{cid}: {exc}")
                    continue
                source = self._digest_source(archive, unpacked, digest, app.deterministic_file)
                if source is None:
                    errors.append(f"{cid}: neither the archive nor {app.deterministic_file or 'a deterministic file'} "
                                  f"hashes to {digest}")
                    continue
                st = read_status(unpacked / "logs")
                target = None
                if dest is not None:
                    target = dest / str(index)
                    if target.exists():
                        shutil.rmtree(target)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(unpacked), target)
                return TaskResult(index=index, task_id=task_id(job_id, index), digest=digest, cid=cid, verified=True,
                                  digest_source=source, path=target, files=stats.files, bytes=stats.bytes,
                                  outcome="ok" if st.ok else "failed", reason=st.reason, exit_code=st.exit_code,
                                  error=st.error, skipped=st.skipped)
        if missing and not errors:
            raise ResultUnavailable(
                f"the result of task {index} of job {job_id} ({', '.join(missing)}) is provided by no IPFS node yours "
                "can reach: the worker that made it may be offline, and nobody pinned it. Connect your node to the "
                "network's peers (the profile's ipfs_peers), wait for the worker to come back, or next time watch "
                "the job with 'tasknet job watch' (it pins results as they land)")
        raise IntegrityError(f"the result of task {index} of job {job_id} does not match the digest {digest} the "
                             f"chain finalized ({'; '.join(errors)}); the content on IPFS is not what the workers "
                             "committed to — do not use it")

    @staticmethod
    def _digest_source(archive: Path, unpacked: Path, digest: str, det_file: str
                       ) -> Literal["archive", "file", "canonical"] | None:
        if sha256_file(archive) == digest:
            return "archive"
        if is_canonical_layout(unpacked):  # a canonicalised result: output/ and logs/ packed again (oracle.canonical)
            st = read_status(unpacked / "logs")
            if canonical_digest(unpacked, det_file if det_file and st.ok else None) == digest:
                return "canonical"
            return None
        if det_file:
            f = unpacked / "output" / det_file
            if f.is_file() and not f.is_symlink() and sha256_file(f) == digest:
                return "file"
        return None

    # -- explain ------------------------------------------------------------------------------------
    def explain(self, job_id: int, index: int | None = None) -> Explanation:
        """Why task ``index`` (default: the first open one) is not running, from what the chain shows."""
        t, posted, block = self._tracker(job_id)
        status = self._status(job_id, posted, block, t.progress())
        if index is None:
            opens = [i for i in range(t.total) if t.task_state(i).state == "open"]
            index = opens[0] if opens else 0
        if not 0 <= index < t.total:
            raise ClientError(f"job {job_id} has tasks 0..{t.total - 1}; there is no task {index}")
        state = t.task_state(index).state
        app = _struct(self.market.registry, "getApp", status.app_id)
        allows = bool(self.market.registry.functions.appAllows(status.app_id, status.requester).call())
        pending = _struct(self.market.contract, "getFailure", task_id(job_id, index)) if status.replication == 1 \
            else None
        wanted = self.market.contract.events.ReplicaWanted().get_logs(
            from_block=self.deploy_block, argument_filters={"taskId": task_id(job_id, index)})
        confidence = int(self.market.contract.functions.getCredibility(job_id).call()[0])
        bound = platform_class_name(self.market.contract.functions.taskPlatformClass(task_id(job_id, index)).call()) \
            if status.arch_mask & ARCH_HOMOGENEOUS else None
        return explain_task(status, index, state, self.chain_time(), self.market.params(), app, allows,
                            self._workers(), largest_input=self._largest_input(status), pending_failure=pending,
                            wanted=dict(wanted[-1]["args"]) if wanted else None, confidence_ppb=confidence,
                            platform_class=bound)

    def _largest_input(self, status: JobStatus) -> int:
        """The largest input a task of the job announces: its dataset (size on chain) or an inputs-document
        entry; 0 when none announces a size (or the document cannot be read from here)."""
        largest = 0
        if status.dataset_id:
            ev = self._registry_logs("DatasetRegistered", datasetId=status.dataset_id)
            largest = int(ev[-1]["args"]["size"]) if ev else 0
        try:
            doc = InputsDocument.model_validate(self.ipfs.cat_json(status.inputs_cid, max_bytes=16 << 20))
        except (TasknetError, ValueError):
            return largest
        return max(largest, doc.largest_inputs()[0])

    def _workers(self) -> list[dict[str, Any]]:
        logs = self._events.events.WorkerRegistered().get_logs(from_block=self.deploy_block)
        addrs = sorted({str(e["args"]["worker"]) for e in logs})
        return [{"address": a, **self.market.worker(a)} for a in addrs]

    def _app_range(self) -> str:
        count = int(self.market.registry.functions.appCount().call())
        return f"apps are numbered 1..{count}" if count else "no app was registered yet"

    # -- helpers ------------------------------------------------------------------------------------
    def _registry_logs(self, name: str, **filters: Any) -> list[Any]:
        ev = getattr(self.market.registry.events, name)()
        return list(ev.get_logs(from_block=self.deploy_block, argument_filters=filters or None))

    @staticmethod
    def _address(value: str) -> str:
        if not Web3.is_address(value):
            raise ClientError(f"{value!r} is not an Ethereum address (0x followed by 40 hex digits)")
        return str(Web3.to_checksum_address(value))


def _indexer_row(r: dict[str, Any]) -> TaskState:
    """An indexer's task row (``/api/tasks``) as a :class:`TaskState`."""
    state = {"running": "claimed", "revealing": "committing"}.get(str(r["status"]), str(r["status"]))
    if state not in ("open", "claimed", "committing", "finalized", "failed", "cancelled", "refunded"):
        state = "claimed"
    return TaskState(index=int(r["idx"]), state=state, workers=[r["worker"]] if r.get("worker") else [],
                     digest=r.get("result_digest"), cid=r.get("result_cid"))
