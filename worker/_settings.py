"""The worker's typed settings: built once at start-up from a config file and/or the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oracle import DevnetInfo

from ._policy import Policy
from .exceptions import WorkerError

#: chain ids where a raw private key in the settings is tolerated (public dev chains)
DEV_CHAIN_IDS = {31337, 1337}


class WorkerSettings(BaseSettings):
    """Every knob of ``tasknet worker run``. Environment variables are ``TASKNET_WORKER_<NAME>``
    (nested with ``__``, e.g. ``TASKNET_WORKER_POLICY__MIN_REWARD``); a JSON/TOML file can give the same keys."""

    model_config = SettingsConfigDict(env_prefix="TASKNET_WORKER_", env_nested_delimiter="__", extra="forbid")

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int | None = Field(None, description="expected chain id; checked at start")
    ipfs_api: str = "http://127.0.0.1:5001"
    marketplace: str = Field("", description="Marketplace contract address")
    deploy_block: int = Field(0, ge=0, description="where to start reading events on a fresh journal")
    keystore: Path | None = Field(None, description="encrypted JSON keystore (password in TASKNET_WORKER_PASSWORD)")
    password: SecretStr | None = None
    private_key: SecretStr | None = Field(None, description="raw key: accepted on dev chains only")
    state_dir: Path = Field(Path.home() / ".tasknet" / "worker", description="journal, cache and task folders")
    confirmations: int = Field(0, ge=0)
    poll_interval: float = Field(0.25, gt=0)
    claim_backoff_max: float = Field(0.3, ge=0, description="random delay before a claim, seconds")
    drain_timeout: float = Field(120.0, ge=0, description="on SIGTERM, wait this long for running tasks")
    stake: int = Field(0, ge=0, description="top the stake up to this amount at start (token wei)")
    on_ban: Literal["exit", "wait"] = Field("exit", description="when the marketplace bans this worker or its stake "
                                            "falls below the minimum: finish what it holds and exit 1, or wait "
                                            "(checking again every minute) for an unban or a top-up")
    policy: Policy = Field(default_factory=Policy)
    memory_per_task_mb: int = Field(512, ge=32)
    input_stall_s: float = Field(120.0, gt=0, description="seconds a download may go without receiving a byte "
                                 "(finding a provider included) before the input counts as unreachable; a large "
                                 "input on a slow link takes as long as it needs while bytes arrive")
    max_input_mb: int = Field(1024, ge=1, description="largest single input accepted")
    output_cap_mb: int = Field(256, ge=1)
    result_retention_s: float = Field(7 * 24 * 3600.0, ge=0, description="keep pinning a result this long after "
                                      "its job closed (time for the requester to pin or download it), then unpin")
    relay_url: str | None = Field(None, description="a relayer (tasknet relayer run): results, commits and reveals "
                                  "are signed (EIP-712) and handed to it instead of sent as transactions")
    relay_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for the relayer's answer before "
                                   "sending the message myself")
    relay_margin_s: int = Field(30, ge=0, description="send a relayed message myself when it has not landed this "
                                "many seconds before its claim or window closes")
    fault: Literal["none", "wrong-result", "crash-after-claim", "crash-after-run",
                   "crash-after-upload", "crash-after-commit", "crash-after-reveal"] = Field(
        "none", description="fault injection for demos and reliability tests: never set it on a real worker")

    @model_validator(mode="after")
    def _key(self) -> WorkerSettings:
        if self.keystore is None and self.private_key is None:
            raise ValueError("no worker key: set 'keystore' (+ TASKNET_WORKER_PASSWORD) or, on a dev chain, "
                             "'private_key'")
        return self

    @classmethod
    def from_file(cls, path: str | Path, **overrides: object) -> WorkerSettings:
        p = Path(path)
        text = p.read_text()
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
        return cls(**{**data, **overrides})

    @classmethod
    def from_devnet(cls, role: str = "worker-1", devnet_file: str | Path | None = None,
                    **overrides: object) -> WorkerSettings:
        info = DevnetInfo.load(devnet_file)
        acct = info.account(role)
        base: dict[str, Any] = {
            "rpc_url": info.rpc_url, "chain_id": info.chain_id, "ipfs_api": info.ipfs_api,
            "marketplace": info.contracts.get("Marketplace", ""), "deploy_block": info.deploy_block,
            "private_key": acct.private_key, "state_dir": Path(info.state_dir) / "workers" / role,
        }
        return cls(**{**base, **overrides})

    def account(self, chain_id: int) -> LocalAccount:
        """The worker's key: the keystore (decrypted with the password) or, on a dev chain, the raw key."""
        if self.keystore is not None:
            password = self.password.get_secret_value() if self.password else os.environ.get("TASKNET_WORKER_PASSWORD")
            if password is None:
                raise WorkerError(f"keystore {self.keystore} needs a password: set TASKNET_WORKER_PASSWORD")
            try:
                key = Account.decrypt(json.loads(self.keystore.read_text()), password)
            except (OSError, ValueError) as exc:
                raise WorkerError(f"cannot open keystore {self.keystore}: {exc}; check the path and password") from exc
            account: LocalAccount = Account.from_key(key)
            return account
        if chain_id not in DEV_CHAIN_IDS:
            raise WorkerError(f"a raw private key is only accepted on a dev chain (ids {sorted(DEV_CHAIN_IDS)}), this is "
                              f"chain {chain_id}; create a keystore with 'tasknet worker keystore' and set 'keystore'")
        assert self.private_key is not None
        dev_account: LocalAccount = Account.from_key(self.private_key.get_secret_value())
        return dev_account
