"""One settings model for every role: where the network is, which IPFS node to use, whose key signs.

Each value comes from the first of these that gives it, and remembers which one did (``tasknet config show``):

1. a command-line flag;
2. a ``TASKNET_*`` environment variable (the same names for every role: ``TASKNET_NETWORK``,
   ``TASKNET_RPC_URL``, ``TASKNET_MARKETPLACE``, ``TASKNET_IPFS_API``, ``TASKNET_KEYSTORE``,
   ``TASKNET_PASSWORD`` ...);
3. the network profile (``--network`` / ``TASKNET_NETWORK`` / ``tasknet network use``; the devnet is the profile
   ``devnet``, and its dev accounts are picked with ``--as ROLE``);
4. defaults.

Keys: an encrypted keystore (``tasknet account new/import`` writes them under ``$TASKNET_HOME/keys``; the
password comes from ``TASKNET_PASSWORD`` or a prompt). A raw private key, or a dev account by role, is accepted
only on a development chain (chain ids 31337 and 1337).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field, SecretStr

from .devnet import DevnetInfo, default_devnet_file, tasknet_home
from .exceptions import DevnetError, ProfileError, TasknetError
from .network import DEVNET, NetworkProfile, PinningService, current_network, load_profile

#: chain ids where a raw private key or a dev account is accepted (public development chains only)
DEV_CHAIN_IDS = frozenset({31337, 1337})

Source = Literal["flag", "env", "profile", "devnet", "default"]

#: setting name -> its environment variable (the same for every role)
ENV = {
    "network": "TASKNET_NETWORK", "rpc_url": "TASKNET_RPC_URL", "marketplace": "TASKNET_MARKETPLACE",
    "deploy_block": "TASKNET_DEPLOY_BLOCK", "confirmations": "TASKNET_CONFIRMATIONS",
    "ipfs_api": "TASKNET_IPFS_API", "image_registry": "TASKNET_IMAGE_REGISTRY", "keystore": "TASKNET_KEYSTORE",
    "password": "TASKNET_PASSWORD", "private_key": "TASKNET_PRIVATE_KEY", "role": "TASKNET_ROLE",
    "keyring": "TASKNET_KEYRING", "devnet_file": "TASKNET_DEVNET_FILE", "indexer_url": "TASKNET_INDEXER_URL",
}
SECRET = {"password", "private_key"}


class KeystoreError(TasknetError):
    """No usable key: a keystore that cannot be opened, a raw key off a dev chain, no key at all."""


class Settings(BaseModel):
    """The effective connection settings of one command or daemon (see the module docstring for the order)."""

    network: str | None = None
    chain_id: int | None = Field(None, description="the chain the profile names (checked against the node)")
    rpc_url: str = "http://127.0.0.1:8545"
    marketplace: str = ""
    deploy_block: int = 0
    confirmations: int = 0
    ipfs_api: str = "http://127.0.0.1:5001"
    ipfs_peers: list[str] = Field(default_factory=list)
    swarm_key: str | None = None
    image_registry: str | None = None
    pinning_service: PinningService | None = Field(None, description="a remote pinning service that commands ask "
                                                   "to pin what they keep (datasets, results)")
    keystore: Path | None = None
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    role: str | None = Field(None, description="a devnet dev account (--as ROLE)")
    keyring: Path | None = None
    devnet_file: Path | None = None
    indexer_url: str | None = Field(None, description="an indexer's HTTP API (tasknet indexer run), read by "
                                    "'tasknet job status' instead of the chain's counters when given")
    home: Path = Field(default_factory=tasknet_home)
    sources: dict[str, Source] = Field(default_factory=dict, exclude=True)

    # -- keys ---------------------------------------------------------------------------------------
    def account(self, chain_id: int, *, prompt: Callable[[str], str] | None = None) -> LocalAccount:
        """The signing key: the keystore (password from the settings, ``TASKNET_PASSWORD`` or ``prompt``); else,
        on a dev chain only, the raw key or the dev account ``role``."""
        if self.keystore is not None:
            return open_keystore(self.keystore, self.password.get_secret_value() if self.password else None,
                                 prompt=prompt)
        raw = self.private_key.get_secret_value() if self.private_key else None
        if raw is None and self.role is not None:
            raw = self.devnet().account(self.role).private_key
        if raw is None:
            raise KeystoreError("no key to sign with: give --keystore FILE (make one with 'tasknet account new' or "
                            "'tasknet account import'), or on the devnet --as ROLE")
        if chain_id not in DEV_CHAIN_IDS:
            raise KeystoreError(f"a raw private key or dev account is only accepted on a development chain (ids "
                            f"{sorted(DEV_CHAIN_IDS)}); chain {chain_id} needs an encrypted keystore: "
                            "'tasknet account import', then --keystore FILE")
        acct: LocalAccount = Account.from_key(raw)
        return acct

    def devnet(self) -> DevnetInfo:
        return DevnetInfo.load(self.devnet_file or default_devnet_file())

    def profile(self) -> NetworkProfile | None:
        return load_profile(self.network) if self.network else None

    def describe(self) -> list[tuple[str, str, Source]]:
        """(name, value, source) of every setting, secrets masked: what ``tasknet config show`` prints."""
        rows: list[tuple[str, str, Source]] = []
        for name in type(self).model_fields:
            if name == "sources":
                continue
            value = getattr(self, name)
            if name in SECRET:
                shown = "(set)" if value is not None else ""
            elif isinstance(value, list):
                shown = ", ".join(value)
            elif isinstance(value, PinningService):
                shown = f"{value.endpoint} (token in ${value.token_env})"
            else:
                shown = "" if value is None else str(value)
            rows.append((name, shown, self.sources.get(name, "default")))
        return rows


def open_keystore(path: Path, password: str | None, *, prompt: Callable[[str], str] | None = None) -> LocalAccount:
    """Decrypt an encrypted JSON keystore; the password is ``password``, else ``TASKNET_PASSWORD``, else asked."""
    pw = password if password is not None else os.environ.get("TASKNET_PASSWORD")
    if pw is None and prompt is not None:
        pw = prompt(f"password for {path}")
    if pw is None:
        raise KeystoreError(f"keystore {path} needs a password: set TASKNET_PASSWORD (or run the command at a terminal "
                        "to be asked for it)")
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise KeystoreError(f"cannot read the keystore {path}: {exc.strerror}; check the path") from exc
    except ValueError as exc:
        raise KeystoreError(f"{path} is not a JSON keystore ({exc}); make one with 'tasknet account import'") from exc
    try:
        key = Account.decrypt(document, pw)
    except ValueError as exc:
        raise KeystoreError(f"cannot open the keystore {path}: wrong password (or a damaged file: {exc})") from exc
    acct: LocalAccount = Account.from_key(key)
    return acct


def resolve(flags: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """The effective settings: ``flags`` (None values mean "not given"), then the environment, then the network
    profile, then defaults. A network named but not installed is an error that says how to get it."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}

    def put(name: str, value: Any, source: Source) -> None:
        if name not in values and value is not None:
            values[name] = value
            sources[name] = source

    for name, value in flags.items():
        put(name, value, "flag")
    for name, var in ENV.items():
        if env.get(var):
            put(name, env[var], "env")
    network = values.get("network")
    explicit = {"rpc_url", "marketplace"} <= values.keys()
    if network is None and not explicit and "devnet_file" not in values:
        network = current_network()
        put("network", network, "default")
    if network:
        profile = load_profile(str(network))
        for name, value in (("rpc_url", profile.rpc_url), ("marketplace", profile.marketplace),
                            ("chain_id", profile.chain_id), ("deploy_block", profile.deploy_block),
                            ("confirmations", profile.confirmations), ("ipfs_peers", profile.ipfs_peers),
                            ("swarm_key", profile.swarm_key), ("image_registry", profile.image_registry),
                            ("pinning_service", profile.pinning_service)):
            put(name, value, "profile")
    if network in (None, DEVNET) and not explicit:
        _devnet_defaults(values.get("devnet_file"), put)
    return Settings(**values, sources=sources)


def _devnet_defaults(devnet_file: str | Path | None, put: Callable[[str, Any, Source], None]) -> None:
    """On the devnet (its profile, or a devnet file named without one), the devnet file fills what is left: the
    chain and contracts, and its own kubo and registry as every role's default IPFS node and image registry."""
    try:
        info = DevnetInfo.load(devnet_file or default_devnet_file())
    except DevnetError:
        return  # no running devnet: what was given stands, and the checks say what is missing
    for name, value in (("rpc_url", info.rpc_url), ("marketplace", info.contracts.get("Marketplace")),
                        ("chain_id", info.chain_id), ("deploy_block", info.deploy_block),
                        ("ipfs_api", info.ipfs_api), ("image_registry", info.registry)):
        put(name, value, "devnet")


def check_network(settings: Settings, w3: Any) -> None:
    """The node answers as the profile says: its chain id is the profile's, and the marketplace has code."""
    if settings.chain_id is not None:
        actual = int(w3.eth.chain_id)
        if actual != settings.chain_id:
            raise ProfileError(f"the node at {settings.rpc_url} serves chain {actual}, but the network profile "
                               f"{settings.network!r} is for chain {settings.chain_id}; fix the RPC URL or use the "
                               "right profile (tasknet network list)")
    if settings.marketplace and not bytes(w3.eth.get_code(w3.to_checksum_address(settings.marketplace))):
        raise ProfileError(f"there is no contract at the marketplace address {settings.marketplace} on "
                           f"{settings.rpc_url}" + (f" (profile {settings.network!r})" if settings.network else "")
                           + "; the profile is stale or for another chain: redeploy with 'tasknet network deploy' "
                           "or fix the address")


def keys_dir() -> Path:
    return tasknet_home() / "keys"


def save_keystore(account: LocalAccount, password: str, name: str) -> Path:
    """Encrypt ``account`` with ``password`` into ``$TASKNET_HOME/keys/NAME.json`` (mode 0600; never
    overwrites)."""
    path = keys_dir() / f"{name}.json"
    if path.exists():
        raise KeystoreError(f"a keystore named {name!r} exists already ({path}); choose another --name")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = Account.encrypt(account.key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(document, fh)
    return path
