"""The worker's typed settings: built once at start-up from a config file and/or the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oracle import DevnetInfo
from oracle.devnet import tasknet_home
from oracle.settings import DEV_CHAIN_IDS, Settings, open_keystore

from ._checkpoint import CheckpointSettings
from ._policy import Policy
from .exceptions import WorkerError


class SlurmSettings(BaseModel):
    """Where and how the Slurm executor (``executor = "slurm"``) hands tasks to the site's cluster: each task
    becomes one batch job whose node runs the task's confined container (see worker/_slurm.py)."""

    shared_dir: Path | None = Field(None, description="a folder on storage every node mounts: task folders "
                                    "(inputs, outputs, logs) and the app images' archives live there")
    node_dir: Path | None = Field(None, description="the same folder as the nodes mount it, when their path differs "
                                  "(default: shared_dir)")
    partition: str | None = Field(None, description="the partition the jobs go to (default: the cluster's default); "
                                  "the capacity advertised on chain is read from it")
    sbatch_args: list[str] = Field(default_factory=list, description="more sbatch options (e.g. --account=..., "
                                   "--qos=...)")
    slurm_conf: Path | None = Field(None, description="the cluster's slurm.conf (SLURM_CONF for the Slurm commands; "
                                    "default: the environment's or the system's)")
    bin_dir: Path | None = Field(None, description="where sbatch, squeue, scancel, sinfo live (default: PATH)")
    poll_s: float = Field(1.0, gt=0, description="seconds between two looks at the queue (squeue)")
    time_margin_s: int = Field(120, ge=0, description="the job's time limit is the task's wall clock plus this "
                               "(the node kills the container at the wall clock itself; Slurm's limit is a backstop)")
    start_margin_s: int = Field(30, ge=0, description="a job still queued when its task's wall clock plus this "
                                "would pass its claim's expiry is cancelled and the claim given back")


class BatchingSettings(BaseModel):
    """How this worker's finished R = 1 results go on chain. A result is journaled (its digest and CID) as soon as
    it is uploaded; it is then held a moment so that the results finishing next to it go in the same transaction
    (one ``multicall``: a transaction's fixed cost is paid once for all of them). It is never held past the first
    of: ``hold_s``; ``hold_claim_fraction`` of the time its claim had left when it was uploaded (so a hold never
    risks the claim's expiry, which is itself before the job's deadline); the moment ``max_results`` are held. It
    goes at once when the worker drains (SIGTERM) and when nothing else that would add to the batch is coming (no
    R = 1 task of this worker runs and there is nothing it may claim now). The commits of credibility-mode replicas
    are held by the same rule: such a task usually wants no other replica, so only its own reveal waits on them.

    R = 1 tasks are claimed several to a lease (``claimFreeRange``: one transaction and one lease slot for all of
    them), up to ``claim_ahead`` beyond the free slots when they would start within ``claim_ahead_s``, at most
    ``lease_tasks`` each, and as the bag ends no fewer than ``lease_least_s`` of work where the room allows (see
    worker/_leases.py); a lease's results go in task order. Replicas of R > 1 tasks are
    claimed ahead too, several to a ``claimSome``, but only those that would still commit with half their
    maxRunSeconds to spare (:func:`worker._leases.replicas_ahead`); one that waited too long for its slot is given
    back instead of run into a slash."""

    hold_s: float = Field(3.0, ge=0, description="longest time a finished R = 1 result waits for others to go with "
                          "it, seconds (0: each result goes alone, as soon as it is uploaded)")
    hold_claim_fraction: float = Field(0.1, ge=0, le=0.5, description="a result is held at most this fraction of the "
                                       "time its claim had left when it was uploaded")
    max_results: int = Field(16, ge=1, le=64, description="results per transaction at most (a full batch goes at "
                             "once; each result may need gas for the job's callback)")
    lease_tasks: int = Field(16, ge=1, le=1024, description="R = 1: at most this many consecutive tasks in one "
                             "claim (one lease: a claim's fixed cost is paid once for all of them; 1: a task per claim)")
    claim_ahead: int = Field(12, ge=0, le=1024, description="tasks claimed beyond the free slots, queued to run as "
                             "slots free up, so that each claim takes several tasks (0: claim only for free slots); "
                             "R > 1: only replicas expected to start and commit with half their maxRunSeconds to "
                             "spare, once a run of the job was seen here")
    claim_ahead_s: float = Field(60.0, ge=0, description="claim ahead only the tasks expected to start within "
                                 "this many seconds: the free slots times this, divided by the median time a task of "
                                 "the job took here (before one has run, the median of its app's tasks here; "
                                 "its maxRunSeconds when none ran here)")
    lease_least_s: float = Field(4.0, ge=0, description="R = 1: as a bag ends, a lease still takes the tasks "
                                 "expected to keep this worker's run slots busy this many seconds (by the median "
                                 "time the job's tasks took here), where the claim-ahead room allows, instead of "
                                 "only its even share of the free tasks: a claim costs about 70,000 gas whatever its "
                                 "length, so quick tasks are not leased one or two at a time (0: share the bag's end "
                                 "out evenly)")
    credible_leases: bool = Field(True, description="credibility mode: while this worker's credibility alone reaches "
                                  "a job's confidence, lease its tasks several at a time and commit and reveal them "
                                  "together (commitRange, revealRange) instead of a claim, a commit and a reveal each")
    lanes: bool = Field(True, description="R > 1 (fixed R, no callback, no GPU, not homogeneous): lease a lane "
                        "of a chunk of consecutive tasks (claimLane; one claim, one commitLane and one revealLane for "
                        "the whole chunk, which settles at once when every lane reveals the same list) instead of a "
                        "claim, a commit and a reveal per task; joining a chunk other workers started comes first. A "
                        "chunk whose other lanes do not come within the claim grace is dissolved and its tasks go on "
                        "per task (as does the job here: its other workers do not lease lanes)")
    lane_tasks: int = Field(10, ge=1, le=32, description="lanes: the most tasks in a chunk this worker starts (a "
                            "chunk's results are final together, after its slowest lane)")
    credible_lease_least: int = Field(8, ge=1, le=1024, description="credibility mode: as a bag ends, a credible "
                                      "lease still takes up to this many tasks where the claim-ahead room allows "
                                      "(instead of the free tasks shared out among the workers): a credible lease "
                                      "pays a claim, a commitRange and a revealRange, about 240,000 gas, whatever "
                                      "its length (1: share the end of the bag out as for R = 1)")


class WorkerSettings(BaseSettings):
    """Every knob of ``tasknet worker run``. Where the network is, and the key, use the names every role uses
    (``TASKNET_RPC_URL``, ``TASKNET_IPFS_API``, ``TASKNET_MARKETPLACE``, ``TASKNET_KEYSTORE``,
    ``TASKNET_PASSWORD``...; usually from a network profile: :meth:`from_common`); the worker's own knobs are
    ``TASKNET_WORKER_<NAME>`` (nested with ``__``, e.g. ``TASKNET_WORKER_POLICY__MIN_REWARD``). A JSON/TOML file
    can give the same keys by field name."""

    model_config = SettingsConfigDict(env_prefix="TASKNET_WORKER_", env_nested_delimiter="__", extra="forbid",
                                      populate_by_name=True)

    rpc_url: str = Field("http://127.0.0.1:8545", validation_alias="TASKNET_RPC_URL")
    chain_id: int | None = Field(None, description="expected chain id; checked at start")
    ipfs_api: str = Field("http://127.0.0.1:5001", validation_alias="TASKNET_IPFS_API")
    ipfs_peers: list[str] = Field(default_factory=list, description="the network's IPFS nodes (the profile's "
                                  "ipfs_peers, multiaddrs with /p2p/ID) the worker's node dials as the worker starts, "
                                  "and again whenever it finds them lost")
    ipfs_peer_check_s: float = Field(15.0, gt=0, description="how often the worker checks that its node is still "
                                     "connected to ipfs_peers, and dials those it lost")
    marketplace: str = Field("", description="Marketplace contract address", validation_alias="TASKNET_MARKETPLACE")
    deploy_block: int = Field(0, ge=0, description="where to start reading events on a fresh journal",
                              validation_alias="TASKNET_DEPLOY_BLOCK")
    keystore: Path | None = Field(None, description="encrypted JSON keystore (password in TASKNET_PASSWORD)",
                                  validation_alias="TASKNET_KEYSTORE")
    password: SecretStr | None = Field(None, validation_alias="TASKNET_PASSWORD")
    private_key: SecretStr | None = Field(None, description="raw key: accepted on dev chains only",
                                          validation_alias="TASKNET_PRIVATE_KEY")
    state_dir: Path = Field(default_factory=lambda: tasknet_home() / "worker",
                            description="journal, cache and task folders (default: $TASKNET_HOME/worker)")
    confirmations: int = Field(0, ge=0, validation_alias="TASKNET_CONFIRMATIONS")
    poll_interval: float = Field(0.25, gt=0)
    idle_poll_interval: float = Field(0.5, gt=0, description="seconds between polls while the worker holds no task "
                                      "and the market no open job (a new job is then seen within this time; such a "
                                      "poll is one request when the chain has no new block)")
    claim_backoff_max: float = Field(0.3, ge=0, description="random delay before a claim, seconds")
    drain_timeout: float = Field(120.0, ge=0, description="on SIGTERM, wait this long for running tasks")
    stake: int = Field(0, ge=0, description="top the stake up to this amount at start (token wei)")
    on_ban: Literal["exit", "wait"] = Field("exit", description="when the marketplace bans this worker or its stake "
                                            "falls below the minimum: finish what it holds and exit 1, or wait "
                                            "(checking again every minute) for an unban or a top-up")
    platform_class: str = Field("", pattern=r"^([a-z0-9][a-z0-9._-]{0,31})?$", description="this worker's platform "
                                "class for homogeneous redundancy: its architecture plus a tag, e.g. 'amd64-avx2' or "
                                "'cuda-sm90' (registered on chain at start; default: the architecture, e.g. 'amd64')")
    policy: Policy = Field(default_factory=Policy)
    memory_per_task_mb: int = Field(512, ge=32)
    input_stall_s: float = Field(120.0, gt=0, description="seconds a download may go without receiving a byte "
                                 "(finding a provider included) before the input counts as unreachable; a large "
                                 "input on a slow link takes as long as it needs while bytes arrive")
    max_input_mb: int = Field(1024, ge=1, description="largest single input accepted")
    output_cap_mb: int = Field(256, ge=1)
    sandbox_reuse: bool = Field(True, description="run a job's tasks one after another in one reused container "
                                "(reset between tasks: worker/_reuse.py) instead of a fresh container each: about "
                                "half the engine's CPU per task; needs a static busybox (Debian busybox-static)")
    avoid_job_s: float = Field(600.0, ge=0, description="after this worker's environment failed a task of a job (an "
                               "input its node cannot reach, its caps), do not claim that job's tasks for this long")
    result_retention_s: float = Field(7 * 24 * 3600.0, ge=0, description="keep pinning a result this long after "
                                      "its job closed (time for the requester to pin or download it), then unpin")
    journal_retention_s: float = Field(30 * 24 * 3600.0, ge=0, description="keep a finished task's record (its "
                                       "steps, outcome and earnings) this long in the journal, then drop it; the "
                                       "totals 'tasknet worker status' shows keep counting it")
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    relay_url: str | None = Field(None, description="a relayer (tasknet relayer run): results, commits and reveals "
                                  "are signed (EIP-712) and handed to it instead of sent as transactions")
    relay_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for the relayer's answer before "
                                   "sending the message myself")
    relay_margin_s: int = Field(30, ge=0, description="send a relayed message myself when it has not landed this "
                                "many seconds before its claim or window closes")
    executor: Literal["local", "slurm"] = Field("local", description="where tasks run: 'local' (this machine's "
                                                "Docker engine) or 'slurm' (the site's cluster: see 'slurm')")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    fault: Literal["none", "wrong-result"] = Field(
        "none", description="the demo's liar: 'wrong-result' changes every output before it is packed, as a lying or "
                            "broken worker would (never set it on a real worker)")

    @model_validator(mode="after")
    def _key(self) -> WorkerSettings:
        if self.keystore is None and self.private_key is None:
            raise ValueError("no worker key: set 'keystore' (TASKNET_KEYSTORE, password in TASKNET_PASSWORD; make "
                             "one with 'tasknet account new' or 'tasknet account import') or, on the devnet, use "
                             "--as worker-N")
        if self.executor == "slurm" and self.slurm.shared_dir is None:
            raise ValueError("executor 'slurm' needs slurm.shared_dir: a folder on storage every node of the cluster "
                             "mounts (TASKNET_WORKER_SLURM__SHARED_DIR, or --slurm-shared-dir)")
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
    def from_common(cls, common: Settings, **overrides: object) -> WorkerSettings:
        """The worker's settings on the network ``common`` resolved (see :func:`oracle.settings.resolve`): its
        endpoints and deployment, its key (keystore; on the devnet, the dev account ``--as`` names), and the
        state folder (``$TASKNET_HOME/worker``; on the devnet, the devnet's ``workers/ROLE``)."""
        base: dict[str, Any] = {
            "rpc_url": common.rpc_url, "chain_id": common.chain_id, "ipfs_api": common.ipfs_api,
            "ipfs_peers": common.ipfs_peers, "marketplace": common.marketplace, "deploy_block": common.deploy_block,
            "confirmations": common.confirmations, "keystore": common.keystore, "password": common.password,
            "private_key": common.private_key,
        }
        if common.keystore is None and common.private_key is None and common.role is not None:
            info = common.devnet()
            base["private_key"] = info.account(common.role).private_key
            base["state_dir"] = Path(info.state_dir) / "workers" / common.role
        return cls(**{**{k: v for k, v in base.items() if v is not None}, **overrides})

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
        """The worker's key: the keystore (decrypted with the password: the settings', else TASKNET_PASSWORD) or,
        on a dev chain, the raw key."""
        if self.keystore is not None:
            return open_keystore(self.keystore, self.password.get_secret_value() if self.password else None)
        if chain_id not in DEV_CHAIN_IDS:
            raise WorkerError(f"a raw private key is only accepted on a dev chain (ids {sorted(DEV_CHAIN_IDS)}), this is "
                              f"chain {chain_id}; make an encrypted keystore with 'tasknet account import' and set "
                              "'keystore' (TASKNET_KEYSTORE)")
        assert self.private_key is not None
        dev_account: LocalAccount = Account.from_key(self.private_key.get_secret_value())
        return dev_account
