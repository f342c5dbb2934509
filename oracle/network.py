"""Network profiles: one small file per Tasknet network, the only thing that tells a role where the network is.

A profile names the chain (id, JSON-RPC URLs, confirmations), the deployment (contract addresses, deploy block),
the IPFS network (the peers a node connects to, an optional private-network swarm key), and optional services
(an image registry, an IPFS Pinning Service API endpoint). ``tasknet network deploy`` writes one for any EVM
chain; ``tasknet up`` writes the profile ``devnet``; ``tasknet network add NAME FILE`` installs one shared by
someone else. Profiles live under ``$TASKNET_HOME/networks/NAME.json`` with Truffle-format artifacts beside them
(``NAME/artifacts/``); ``tasknet network use NAME`` records the current one in ``$TASKNET_HOME/config.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .devnet import tasknet_home
from .exceptions import ProfileError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: the profile name the embedded devnet writes
DEVNET = "devnet"


class PinningService(BaseModel):
    """A remote pinning service speaking the IPFS Pinning Service API (``POST {endpoint}/pins``)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="base URL of the Pinning Service API, e.g. https://pins.example/api/v1")
    token_env: str = Field("TASKNET_PINNING_TOKEN", description="environment variable holding the access token "
                           "(never the token itself: profiles are shared)")


class NetworkProfile(BaseModel):
    """Where a Tasknet network is. Shared between its participants; holds no secret (keys stay in keystores)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    name: str
    chain_id: int = Field(ge=1)
    rpc_urls: list[str] = Field(min_length=1, description="JSON-RPC endpoints, tried in order")
    contracts: dict[str, str] = Field(description="contract name -> address (Marketplace, MarketplaceRegistry, "
                                      "the linked libraries, the token)")
    deploy_block: int = Field(0, ge=0, description="the first block to read events from")
    confirmations: int = Field(0, ge=0, description="blocks an event must be buried under before it is acted on")
    token: str | None = Field(None, description="the payment token's address (also in contracts when deployed "
                              "with --test-token)")
    ipfs_peers: list[str] = Field(default_factory=list, description="multiaddrs (with /p2p/ID) of IPFS nodes every "
                                  "participant's node connects to: the network's bootstrap")
    swarm_key: str | None = Field(None, description="a private IPFS network's key (the 64 hex digits of a "
                                  "swarm.key): nodes without it cannot join")
    ipfs_gateway: str | None = None
    image_registry: str | None = Field(None, description="host:port of the registry apps are pushed to")
    pinning_service: PinningService | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError(f"network name {v!r} must be lowercase letters, digits, '.', '_' or '-' "
                             "(at most 64, starting with a letter or digit)")
        return v

    @field_validator("swarm_key")
    @classmethod
    def _swarm_key(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("swarm_key must be the 64 lowercase hex digits of a private network's key")
        return v

    @property
    def marketplace(self) -> str:
        try:
            return self.contracts["Marketplace"]
        except KeyError:
            raise ProfileError(f"network profile {self.name!r} names no Marketplace contract; redeploy with "
                               "'tasknet network deploy' or fix the profile") from None

    @property
    def rpc_url(self) -> str:
        return self.rpc_urls[0]


def networks_dir() -> Path:
    return tasknet_home() / "networks"


def profile_path(name: str) -> Path:
    return networks_dir() / f"{name}.json"


def artifacts_dir(name: str) -> Path:
    """Where the Truffle-format artifacts of network ``name`` are written (``networks[chainId]`` filled)."""
    return networks_dir() / name / "artifacts"


def read_profile(path: str | Path) -> NetworkProfile:
    """A profile from a file; a clear error when it is missing or invalid."""
    p = Path(path)
    try:
        return NetworkProfile.model_validate_json(p.read_text())
    except OSError as exc:
        raise ProfileError(f"cannot read the network profile {p}: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the document"
        raise ProfileError(f"{p} is not a valid network profile: {first['msg']} at {where}") from exc


def load_profile(name: str) -> NetworkProfile:
    """The installed profile ``name``."""
    path = profile_path(name)
    if not path.is_file():
        known = ", ".join(list_profiles()) or "none"
        hint = "start the devnet with 'tasknet up'" if name == DEVNET else \
            f"install it with 'tasknet network add {name} FILE' or deploy with 'tasknet network deploy'"
        raise ProfileError(f"no network profile named {name!r} (installed: {known}); {hint}")
    return read_profile(path)


def save_profile(profile: NetworkProfile) -> Path:
    """Install ``profile`` under its name (atomically); return its path."""
    path = profile_path(profile.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(profile.model_dump_json(indent=2, exclude_none=True) + "\n")
    tmp.replace(path)
    return path


def remove_profile(name: str) -> bool:
    path = profile_path(name)
    if not path.exists():
        return False
    path.unlink()
    return True


def list_profiles() -> list[str]:
    folder = networks_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _config_path() -> Path:
    return tasknet_home() / "config.json"


def current_network() -> str | None:
    """The network to use when none is named: ``$TASKNET_NETWORK``, else the one ``tasknet network use`` chose,
    else ``devnet`` when its profile exists, else None."""
    env = os.environ.get("TASKNET_NETWORK")
    if env:
        return env
    try:
        chosen = json.loads(_config_path().read_text()).get("network")
    except (OSError, ValueError):
        chosen = None
    if chosen:
        return str(chosen)
    return DEVNET if profile_path(DEVNET).is_file() else None


def use_network(name: str) -> None:
    """Make ``name`` the current network (it must be installed)."""
    load_profile(name)
    path = _config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        config = {}
    config["network"] = name
    path.write_text(json.dumps(config, indent=2) + "\n")
