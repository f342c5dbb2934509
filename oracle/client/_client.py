"""The client facade: one account, one marketplace, its IPFS node; the namespaces hold the operations."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from .._artifacts import abi
from .._chain import connect
from ..devnet import DevnetInfo
from ..exceptions import ClientError, ProfileError
from ..ipfs import COMMAND_DIAL_TIMEOUT_S, IpfsClient, join_network
from ..market import Market
from ..pinning import PinningClient
from ..settings import Settings, check_network
from ..tx import TxSender
from ._indexer import IndexerApi
from ._keyring import Keyring
from .account import DEV_CHAIN_IDS, Account
from .apps import Apps
from .datasets import Datasets
from .jobs import Jobs
from .results import Results
from .workers import Workers

if TYPE_CHECKING:
    import docker


class Client:
    """One account talking to one marketplace, its IPFS node and (for app owners) a Docker engine.

    What it does lives in its namespaces: :attr:`account`, :attr:`apps`, :attr:`datasets`, :attr:`jobs`,
    :attr:`results` and :attr:`workers`. The client itself builds the connection (:meth:`from_devnet`,
    :meth:`from_settings`, :meth:`connect`) and closes it (:meth:`close`, or ``with``)."""

    def __init__(self, w3: Web3, account: LocalAccount, marketplace: str, ipfs: IpfsClient, *,
                 deploy_block: int = 0, image_registry: str | None = None, keyring: Keyring | str | Path | None = None,
                 docker_client: docker.DockerClient | None = None, pinning: PinningClient | None = None,
                 indexer_url: str | None = None) -> None:
        self.w3 = w3
        #: the account's key (``eth_account`` ``LocalAccount``): what signs the transactions
        self.signer = account
        self.market = Market(w3, marketplace)
        self.ipfs = ipfs
        self.deploy_block = deploy_block
        self.image_registry = image_registry
        self.keyring = keyring if isinstance(keyring, Keyring) else Keyring(keyring)
        self._docker = docker_client
        self.sender = TxSender(w3, account, extra_abis=self.market.error_abis)
        self._events = w3.eth.contract(address=self.market.address, abi=abi("IMarketplace"))
        #: the network's remote pinning service (the profile's ``pinning_service``), asked to pin too
        self.pinning = pinning
        #: an indexer's API (``indexer_url``): job summaries and task pages come from it instead of the chain
        self.indexer = IndexerApi(indexer_url) if indexer_url else None
        #: the account's money: balance, deposit, withdraw, faucet
        self.account = Account(self)
        #: apps: build, push, register, update, allow, deprecate, get, list
        self.apps = Apps(self)
        #: datasets: add, get, list
        self.datasets = Datasets(self)
        #: jobs: quote, submit, summary, task_page, get, list, tasks, watch, wait, cancel, close, failures, explain
        self.jobs = Jobs(self)
        #: results: download, verify
        self.results = Results(self)
        #: the workers' records: get, list
        self.workers = Workers(self)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_devnet(cls, role: str = "requester", devnet_file: str | Path | None = None, **kw: Any) -> Client:
        """A client for dev account ``role`` of the devnet described by ``devnet_file`` (default:
        ``$TASKNET_DEVNET_FILE``, else the file ``tasknet up`` writes)."""
        info = DevnetInfo.load(devnet_file or os.environ.get("TASKNET_DEVNET_FILE") or None)
        if "Marketplace" not in info.contracts:
            raise ClientError(f"the devnet file lists no Marketplace contract ({', '.join(info.contracts)}); "
                              "restart the devnet with 'tasknet down && tasknet up'")
        acct = EthAccount.from_key(info.account(role).private_key)
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
        join_network(ipfs, settings.ipfs_peers, timeout=COMMAND_DIAL_TIMEOUT_S)  # as the profile promises
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
                key = EthAccount.decrypt(json.loads(Path(keystore).read_text()), pw)
            except (OSError, ValueError) as exc:
                raise ClientError(f"cannot open keystore {keystore}: {exc}; check the path and the password") from exc
            acct = EthAccount.from_key(key)
        elif private_key is not None:
            chain = int(w3.eth.chain_id)
            if chain not in DEV_CHAIN_IDS:
                raise ClientError(f"a raw private key is only accepted on a dev chain (ids {sorted(DEV_CHAIN_IDS)}); "
                                  f"chain {chain} needs an encrypted keystore (keystore=PATH)")
            acct = EthAccount.from_key(private_key)
        else:
            raise ClientError("no key: pass keystore=PATH (+ password) or, on a dev chain, private_key=")
        if not Web3.is_address(marketplace) or not w3.eth.get_code(Web3.to_checksum_address(marketplace)):
            raise ClientError(f"no contract at marketplace address {marketplace} on {rpc_url}; check the address "
                              "and the chain")
        return cls(w3, acct, marketplace, IpfsClient(ipfs_api), **kw)

    def close(self) -> None:
        """Close the connections the client holds (IPFS, pinning service, indexer, Docker)."""
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
        """The account's address (checksummed)."""
        return str(self.signer.address)

    @property
    def docker(self) -> docker.DockerClient:
        """The Docker engine app owners build and push with (``docker_client``, else the environment's)."""
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
