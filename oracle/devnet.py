"""The devnet file: one JSON document describing a running embedded devnet (written by ``tasknet up``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from .exceptions import DevnetError


def tasknet_home() -> Path:
    """Tasknet's state folder: ``$TASKNET_HOME`` or ``~/.tasknet``."""
    return Path(os.environ.get("TASKNET_HOME") or Path.home() / ".tasknet")


def default_devnet_file() -> Path:
    return tasknet_home() / "devnet" / "devnet.json"


class DevAccount(BaseModel):
    role: str = Field(description="what the demo and examples use it for: deployer, requester, worker-1, ...")
    address: str
    private_key: str = Field(description="a key derived from the public dev mnemonic: worthless, never reuse")


class ComponentInfo(BaseModel):
    pid: int | None = Field(None, description="pid when the devnet started it, None when it reused one")
    started: bool = Field(description="True if 'tasknet up' started it (and 'tasknet down' must stop it)")
    cmdline: list[str] = Field(default_factory=list)
    log: str | None = None


class DevnetInfo(BaseModel):
    """Everything a client, worker or indexer needs to use the devnet."""

    version: int = 1
    rpc_url: str
    chain_id: int
    block_time: float | None = Field(None, description="anvil --block-time; None means automine")
    ipfs_api: str
    ipfs_gateway: str
    registry: str = Field(description="host:port of the local image registry")
    docker_host: str
    contracts: dict[str, str] = Field(default_factory=dict, description="contract name -> address")
    deploy_block: int = 0
    mnemonic: str
    accounts: list[DevAccount] = Field(default_factory=list)
    components: dict[str, ComponentInfo] = Field(default_factory=dict)
    state_dir: str

    def account(self, role: str) -> DevAccount:
        for a in self.accounts:
            if a.role == role:
                return a
        raise DevnetError(f"the devnet has no account with role {role!r} (roles: "
                          f"{', '.join(a.role for a in self.accounts)})")

    @classmethod
    def load(cls, path: str | Path | None = None) -> DevnetInfo:
        p = Path(path) if path else default_devnet_file()
        if not p.is_file():
            raise DevnetError(f"no devnet file at {p}; start the devnet with 'tasknet up'")
        try:
            return cls.model_validate_json(p.read_text())
        except ValueError as exc:
            raise DevnetError(f"the devnet file {p} is unreadable ({exc}); run 'tasknet down' then 'tasknet up'") from exc

    def save(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(p)
