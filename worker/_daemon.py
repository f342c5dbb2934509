"""The worker daemon: follows the market's events, claims what its policy allows, runs the pipeline.

``Worker.run()`` blocks until SIGTERM/SIGINT (then stops claiming and drains running tasks);
``Worker.async_run(stop)`` is the same loop for tests. Blocking calls (web3, Docker) run in threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime as dt
import errno
import fcntl
import itertools
import os
import random
import signal
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
from structlog.contextvars import bound_contextvars
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from oracle import IpfsClient, connect, get_logger, reverted_error
from oracle import event_args as ea
from oracle.events import DecodedEvent, EventStream, StreamCursor
from oracle.exceptions import IpfsError, IpfsUnavailable, RpcUnavailable, TasknetError, TransactionReverted
from oracle.images import BUSYBOX_BASE, build_busybox_base, image_exists
from oracle.ipfs import join_network
from oracle.market import JobView, Market, MarketParams, TaskStatus, WorkerRecord
from oracle.protocol import ARCH_BITS_MASK, lane_key, platform_class_bytes, split_task_id, task_id
from oracle.tx import TxSender

from ._batching import Held, flush_reason
from ._cache import InputCache
from ._caps import Capabilities, detect, load_average
from ._checkpoint import container_label, must_give_back, policy_closed
from ._credible import is_credible_lease
from ._gate import RunGate, Size
from ._gpus import GpuAllocator, detect_gpus, docker_info, promised_gpus
from ._journal import ClaimData, GpuNote, Journal, Step, TaskRecord
from ._lanes import is_lane, lane_of
from ._leases import (
    LeaseOp,
    ahead_for,
    chunk_ops,
    lease_of,
    plan_lease,
    range_size,
    replica_late,
    replicas_ahead,
    replicas_go_ahead,
    start_in_bag,
    tail_least,
)
from ._pipeline import TIME_GATED_GAS, Pipeline, is_failure
from ._policy import Offer, decide, lent, lent_gpus, run_slots
from ._sandbox import Sandbox, sandbox_owner
from ._settings import WorkerSettings
from ._slurm import SlurmExecutor
from ._view import MarketView
from .exceptions import (
    CannotClaim,
    EnvironmentFailure,
    GpuUnavailable,
    SandboxError,
    SlurmUnavailable,
    StateDirInUse,
    TaskPaused,
    WorkerError,
)

log = get_logger("worker")

MAX_ATTEMPTS = 5  # a task whose pipeline fails this often on transient errors is given up
ARCH_BITS = {"amd64": 1, "arm64": 2, "riscv64": 4}
#: seconds the protocol parameters (replica stake...) are trusted before being read again
PARAMS_TTL = 30.0
#: steps where the task waits on the chain (a relayed result, the reveal phase, finalization): advanced by polling
ON_CHAIN_WAIT = (Step.SUBMITTED, Step.COMMITTED, Step.REVEALED, Step.ABANDONING)
#: candidates listed in one claimSome, beyond the free slots: the ones others took first are skipped on chain
CLAIM_CANDIDATES = 16
#: seconds added to a job's observed run time before joining a replicated task whose commit window is open
JOIN_MARGIN_S = 15
#: a job this long past its deadline (and not seen closing) is dropped from the view: nothing of it can be claimed
EXPIRED_JOB_GRACE_S = 3600.0
#: seconds between two rounds of housekeeping (leftover containers, unpinning, dropping old finished records)
HOUSEKEEPING_S = 15.0
#: a task whose dependency is down is given back when its claim would expire within this margin of the next retry
ABANDON_MARGIN_S = 30
#: gas a claimSome may need: a base, and per task claimed (a replica's claim binding a homogeneous task is the
#: costliest, 141k in BENCHMARKS.md), whatever its simulation saw
CLAIM_BASE_GAS = 60_000
CLAIM_GAS = 160_000
#: seconds between two looks for tasks to claim ahead while every slot is busy
AHEAD_RETRY_S = 1.0
#: threads waiting on a cluster's tasks when the policy sets no max_concurrent (the cluster's CPUs bound them)
SLURM_THREADS = 256
#: why a task claimed ahead (queued for a slot) is given back when the worker stops before it started
STOPPED_QUEUED = "the worker stopped before this task (claimed ahead) started"
LOST_RACE = {"MarketplaceCommitClosed", "MarketplaceTaskTaken", "MarketplaceNoFreeReplica", "MarketplaceAlreadyClaimed",
             "MarketplaceTaskNotActive", "MarketplaceJobClosed", "MarketplaceClaimPastDeadline",
             "MarketplaceNothingExpired", "MarketplaceLeaseNotExpired", "MarketplaceUnknownLease"}


#: the candidate action of a check chunk's free lane (credibility mode; PROTOCOL.md, "Check lanes")
CHECK_LANE = "checkLane"


class Worker:
    def __init__(self, settings: WorkerSettings, *, docker_client: docker.DockerClient | None = None,
                 caps: Capabilities | None = None) -> None:
        self.s = settings
        self.w3 = connect(settings.rpc_url)
        chain_id = int(self.w3.eth.chain_id)
        if settings.chain_id is not None and settings.chain_id != chain_id:
            raise WorkerError(f"the RPC endpoint {settings.rpc_url} serves chain {chain_id}, the settings expect "
                              f"{settings.chain_id}; fix rpc_url or chain_id")
        if not settings.marketplace:
            raise WorkerError("no marketplace address: set 'marketplace' (or use a devnet with 'tasknet up')")
        self.account = settings.account(chain_id)
        self.market = Market(self.w3, settings.marketplace)
        self.sender = TxSender(self.w3, self.account, extra_abis=self.market.error_abis)
        self.docker = docker_client or _docker_or_fail()
        self.caps = caps or detect(self.docker)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(settings.state_dir / "journal.db")
        self.ipfs = IpfsClient(settings.ipfs_api)
        self._unreachable_peers: set[str] = set()  # of ipfs_peers, those the last dial missed (logged once)
        self._peers_checked = 0.0  # monotonic time of the last look at them (_keep_network_peers)
        try:
            self.ipfs.check_online()  # an offline node is a configuration error: stop now, saying so
            self._keep_network_peers(starting=True)
        except IpfsUnavailable as exc:  # a node that is down may come back: the loop waits for it
            log.warning("ipfs_unavailable_at_start", error=str(exc)[:300])
        self.cache = InputCache(settings.state_dir / "cache", max_bytes=settings.policy.cache_max_bytes,
                                ipfs=self.ipfs, timeout=settings.input_stall_s,
                                max_input_bytes=min(settings.max_input_mb << 20, settings.policy.cache_max_bytes))
        if not image_exists(self.docker, BUSYBOX_BASE):
            build_busybox_base(self.docker)
        # Containers are labelled per daemon (address + state folder): a daemon cleans up after its own crashed
        # runs, never another daemon's running tasks, even one with the same key on the same engine.
        # One output slot per task running at once, and a spare: each is kept between tasks (see worker/_sandbox.py).
        # A local executor makes its slots as it starts and never runs more tasks at once (its run gate): a spare
        # made while they run would be a holder and a reused container no task needs.
        self.sandbox = Sandbox(self.docker, owner=sandbox_owner(self.account.address, settings.state_dir),
                               max_idle=run_slots(self.caps, settings.policy) + 1,
                               prewarm=settings.executor == "slurm",
                               reuse_dir=settings.state_dir / "reuse" if settings.sandbox_reuse else None)
        #: executor 'slurm': each task runs as a job of the site's cluster (worker/_slurm.py); its capabilities and
        #: capacity are the partition's, and its tasks wait in threads of their own (a job may queue for long)
        self.slurm: SlurmExecutor | None = None
        self._task_pool: ThreadPoolExecutor | None = None
        self._claims_paused_reason: str | None = None
        if settings.executor == "slurm":
            self.slurm = SlurmExecutor(settings.slurm, self.sandbox, owner=self.sandbox.owner,
                                       chain_now=self.market.clock.now)
            self._task_pool = ThreadPoolExecutor((settings.policy.max_concurrent or SLURM_THREADS) + 2,
                                                 thread_name_prefix="slurm-task")
            if caps is None:
                self.caps = self._cluster_caps()
                if self.caps.gpus:  # its batch jobs do not ask for GPUs (gres) yet: a GPU job would run without
                    self.caps = self.caps.model_copy(update={"gpus": 0, "gpu_note": (
                        f"the cluster's nodes have {self.caps.gpus} GPU(s), but the Slurm executor does not give "
                        "GPUs to tasks yet: none is lent")})
        self.pipeline = Pipeline(settings, self.market, self.sender, self.ipfs, self.cache, self.sandbox,
                                 self.docker, self.journal, slurm=self.slurm)
        self.pipeline.hold_results = True  # the daemon submits R = 1 results together (see _flush_results)
        #: the GPUs lent (policy.gpus_lent of those the engine can give a container), each to one running task
        self.gpus = GpuAllocator(self.caps.gpu_ids[:lent_gpus(self.caps, settings.policy)])
        self.pipeline.gpus = self.gpus
        #: lent GPUs no claimed task of this worker (running or about to) is promised: see _maybe_claim
        self._gpus_free = self.gpus.total
        self.view = MarketView()
        self.stream = EventStream(self.w3, self.market.addresses, self.market.event_abis,
                                  StreamCursor(next_block=settings.deploy_block), confirmations=settings.confirmations)
        self._restore()
        self._init_loop_state()

    def _init_loop_state(self) -> None:
        """What the daemon's loop keeps between polls (tasks running, held results, claims, the run gate)."""
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.stopping = False
        #: cores of each running task (its own share of the load, with idle_only) and the stops asked for
        #: (task key -> its docker stop, running in a thread; see _pause_running)
        self._task_cores: dict[str, int] = {}
        self._stops: dict[str, asyncio.Future[int]] = {}
        #: R = 1 results uploaded (journaled) and held to go on chain with others (see worker/_batching.py)
        self._held: set[str] = set()
        #: running tasks of R = 1 jobs: each will add a result to the held ones
        self._batched_running: set[str] = set()
        #: (R > 1) reveals held to go together: task key -> wall time its reveal phase was first seen open
        self._reveal_since: dict[str, float] = {}
        #: whether the last round of claims found something this worker may claim (or had no free slot)
        self._claimable = True
        #: whether the last look at the candidates found too little free stake for one more claim
        self._stake_short = False
        self._stake_bound = False  # a lease about to be claimed wants the stake held results lock (_unlock_stake_for)
        self._frontier: dict[int, int] = {}  # R = 1 bag -> the task after this worker's last lease of it
        #: stake not locked by claims, as the last look at the candidates found it
        self._free_stake = 0
        self._verified: int | None = None  # this worker's verified results (credibility), read with its stake
        #: tasks spawned that wait for a run slot (claimed ahead, several to a lease): the gate lets as many run
        #: at once as the cores and memory lent hold, or ``max_concurrent`` (None on a cluster: its queue is the
        #: cluster's; see worker/_gate.py)
        self._queued: set[str] = set()
        self._gate: RunGate | None = None
        self._sizes: dict[int, Size] = {}  # job id -> what one of its tasks takes while it runs
        self._cluster_capacity = 1  # on a cluster: the tasks it may hold at once, as the last look found it
        self.log = log.bind(worker=self.account.address)
        self.me_lower = self.account.address.lower()
        self._params_cache: tuple[float, MarketParams] | None = None
        #: why this worker may not claim at all (banned, stake below the minimum), or None
        self.cannot_claim: str | None = None
        #: job id -> why its inputs are too large for this worker's caps (None: they fit)
        self._too_large: dict[int, str | None] = {}
        #: job id -> until when (monotonic) its tasks are not claimed: this worker's environment failed one of them
        self._avoid: dict[int, float] = {}
        #: job id -> seconds each of its tasks took here from claim to upload (to judge whether a join is in time)
        self._run_times: dict[int, list[float]] = {}
        #: job id -> seconds its last tasks ran here (from a run slot to upload): how far ahead to claim (R = 1)
        self._task_seconds: dict[int, collections.deque[float]] = {}
        #: app id -> the same, over its jobs: the first claim of a new job of an app that ran here before
        self._app_seconds: dict[int, collections.deque[float]] = {}
        self._next_ahead = 0.0

    # -- state ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        saved = self.journal.get_value("stream")
        if saved is not None and saved.get("market") == self.market.address:
            self.stream.cursor = StreamCursor.model_validate(saved["cursor"])
            self.view = MarketView.model_validate(saved["view"])
            # a view saved before it held open jobs only: forget the closed ones, noting them for unpinning
            closed = [j for j, job in self.view.jobs.items() if job.closed]
            for j in closed:
                self.view.forget(j)
            self.journal.job_closed(closed)

    def _save(self) -> None:
        """Save the cursor with the view (open jobs only: a job long past its deadline is dropped first)."""
        expired = self.view.forget_expired(self.market.clock.now(), EXPIRED_JOB_GRACE_S)  # deadlines are chain time
        self.journal.job_closed(expired)  # over for good: its results may be unpinned after the retention
        self.journal.set_value("stream", {"market": self.market.address, "cursor": self.stream.cursor.model_dump(),
                                          "view": self.view.model_dump(mode="json")})

    def _cluster_caps(self) -> Capabilities:
        """(executor 'slurm') What one task may ask of the cluster, read from its partition (``sinfo``); the last
        reading (journaled) when the controller does not answer at start."""
        assert self.slurm is not None
        try:
            caps = self.slurm.capabilities()
        except SlurmUnavailable as exc:
            saved = self.journal.get_value("slurm_caps")
            if saved is None:
                raise WorkerError(f"cannot read the cluster's partition: {exc}") from exc
            log.warning("slurm_unreachable_at_start", error=str(exc), using="the capabilities read last time")
            return Capabilities.model_validate(saved)
        self.journal.set_value("slurm_caps", caps.model_dump())
        return caps

    def _capacity(self) -> int:
        """(On a cluster) Tasks this worker may hold at once: the CPUs of its partition's nodes that take jobs, at
        most the policy's ``max_concurrent`` when set, and none while its controller does not answer (claims
        pause; the reason is logged when it changes)."""
        assert self.slurm is not None
        try:
            cpus = self.slurm.capacity()
            reason = None if cpus else "no node of the Slurm partition takes jobs (drained, down or not responding)"
        except SlurmUnavailable as exc:
            cpus, reason = 0, str(exc)
        if reason != self._claims_paused_reason:
            if reason is not None:
                self.log.warning("claims_paused", reason=reason)
            else:
                self.log.info("claims_resumed", cluster_cpus=cpus)
            self._claims_paused_reason = reason
        return cpus if self.s.policy.max_concurrent is None else min(self.s.policy.max_concurrent, cpus)

    def _size(self, job_id: int, job: JobView | dict[str, Any]) -> Size:
        """What one task of the job takes while it runs (:meth:`worker._pipeline.Pipeline.task_size`)."""
        size = self._sizes.get(job_id)
        if size is None:
            size = self._sizes[job_id] = self.pipeline.task_size(
                job if isinstance(job, JobView) else JobView.model_validate(job))
        return size

    def _slots_for(self, sizes: Iterable[Size]) -> int:
        """Tasks this worker runs at once when the largest are of ``sizes`` (the tasks it holds, the job it would
        claim from): :func:`worker._policy.run_slots` for each, the fewest; for none, 1-core tasks. On a cluster,
        what its nodes take (:meth:`_capacity`, as the last look at the candidates found it)."""
        if self.slurm is not None:
            return self._cluster_capacity
        return min((run_slots(self.caps, self.s.policy, *size) for size in sizes),
                   default=run_slots(self.caps, self.s.policy))

    # -- set-up -----------------------------------------------------------------------------------
    def advertised(self) -> dict[str, int]:
        """The capabilities this worker advertises: its cores (as many as the policy lends), memory, GPUs and
        architecture bit."""
        return {"cores": lent(self.caps, self.s.policy)[0], "memoryMB": self.caps.memory_mb,
                "gpus": lent_gpus(self.caps, self.s.policy), "archMask": ARCH_BITS.get(self.caps.arch, 0)}

    @property
    def platform_class(self) -> str:
        """The platform class this worker declares (settings.platform_class, else its architecture)."""
        return self.s.platform_class or self.caps.arch

    def _keep_network_peers(self, starting: bool = False) -> None:
        """Keep the worker's node connected to the network's IPFS peers (``ipfs_peers``): dial them as the worker
        starts, then, every ``ipfs_peer_check_s``, those it lost (a peer restarted, a network outage). A node dials
        them on its own late (``Peering``, after a backoff) or never (a node of the user's without ``Peering``, on a
        private network with no other discovery), and meanwhile it fetches none of the inputs they hold, so the
        worker would give back the tasks it claimed. A peer that stays unreachable is logged once."""
        self._peers_checked = time.monotonic()
        peers = self.s.ipfs_peers
        lost = self.ipfs.lost(peers)
        missed = join_network(self.ipfs, lost, reported=self._unreachable_peers)
        back = [p for p in lost if p not in missed]
        if starting and peers:
            me = f"/p2p/{self.ipfs.id().id}"  # the devnet's profile names the worker's own node: not a peer
            others = [p for p in peers if not p.endswith(me)]
            log.info("ipfs_peers_dialled", connected=len(others) - len(missed), missed=len(missed))
        elif back:
            log.info("ipfs_peers_reconnected", peers=back)
        self._unreachable_peers = set(missed)

    def register(self) -> bool:
        """Register on chain with :meth:`advertised` capabilities and :attr:`platform_class`, or update them;
        False when already current."""
        me = self.market.worker_record(self.account.address)
        caps = self.advertised()
        fns = self.market.contract.functions
        sent = False
        current = {"cores": me.cores, "memoryMB": me.memory_mb, "gpus": me.gpus, "archMask": me.arch_mask}
        if not (me.registered and current == caps):
            self.sender.transact(fns.registerWorker(caps["cores"], caps["memoryMB"], caps["gpus"], caps["archMask"]))
            sent = True
        cls = platform_class_bytes(self.platform_class)
        if bytes(fns.platformClassOf(self.account.address).call()) != cls:
            self.sender.transact(fns.setPlatformClass(cls))
            sent = True
        return sent

    def ensure_registered(self) -> None:
        """Advertise the capabilities, and top the stake up to ``settings.stake``."""
        self.register()
        me = self.market.worker_record(self.account.address)
        cores, memory = me.cores, me.memory_mb
        missing = self.s.stake - me.stake
        if missing > 0:
            balance = self.market.balance(self.account.address)
            if balance < missing:
                need = missing - balance
                self.sender.transact(self.market.token.functions.approve(self.market.address, need))
                self.sender.transact(self.market.contract.functions.deposit(need))
            self.sender.transact(self.market.contract.functions.stake(missing))
        me = self.market.worker_record(self.account.address)
        self.log.info("worker_ready", cores=cores, memory_mb=memory, arch=self.caps.arch,
                      platform_class=self.platform_class, stake=me.stake, **self._note_gpus())
        self._standing(me)

    def _note_gpus(self) -> GpuNote:
        """Journal what this worker lends in GPUs (models, memory, why none) for 'tasknet worker status'; return it
        for the log."""
        doc: GpuNote = {"gpus": self.gpus.total, "gpu_devices": [f"{d.index}: {d.name} ({d.memory_mb} MiB)"
                                                                for d in self.caps.gpu_devices if d.id in self.gpus.ids]}
        if self.caps.gpu_note:
            doc["gpu_note"] = self.caps.gpu_note
        self.journal.set_value("gpus", doc)
        return doc

    def _refresh_gpus(self) -> None:
        """(in a thread) The engine refused a task's GPUs: detect them again, lend what is left, advertise it."""
        inventory = detect_gpus(docker_info(self.docker))
        self.caps = self.caps.model_copy(update={"gpus": inventory.count, "gpu_devices": inventory.devices,
                                                 "gpu_note": inventory.note})
        self.gpus.set_ids(self.caps.gpu_ids[:lent_gpus(self.caps, self.s.policy)])
        self.log.warning("gpus_detected_again", **self._note_gpus())
        try:
            self.register()
        except Exception as exc:  # noqa: BLE001 - the chain away: the next start (or refusal) advertises them
            self.log.warning("gpus_not_advertised", error=str(exc)[:300], action="claims follow the new count; the "
                             "chain learns it at the next start")

    # -- main loop --------------------------------------------------------------------------------
    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.async_run(stop)

    async def async_run(self, stop: asyncio.Event) -> None:
        lock = lock_state_dir(self.s.state_dir)  # one daemon per state folder, for as long as it runs
        try:
            await self._async_run(stop)
        finally:
            os.close(lock)

    async def _async_run(self, stop: asyncio.Event) -> None:
        self._wake = asyncio.Event()
        self._gate = RunGate(*lent(self.caps, self.s.policy), count=self.s.policy.max_concurrent) \
            if self.slurm is None else None
        self._live = len(self.journal.unfinished())  # tasks the journal holds unfinished (see _advance_all)
        self._advance_soon = False
        self._claims_paused_until = 0.0
        self._warmed_app: int | None = None  # the app whose reused containers were made ready (_warm_app)
        self._warm_said = False  # worker_warm logged (_warm_app)
        await asyncio.to_thread(self.ensure_registered)
        self.sandbox.cleanup()
        if self.slurm is None:  # an output slot for each task that may run at once, ready before the first claim
            self.sandbox.warm_async(self.pipeline.output_limits(), run_slots(self.caps, self.s.policy))
        unfinished = self.journal.unfinished()
        self.pipeline.checkpoints.sweep({r.task_key for r in unfinished})  # folders of tasks over or given back
        for rec in unfinished:
            if self._holds_result(rec):
                self._held.add(rec.task_key)  # uploaded before the restart: submitted with the next batch
            elif rec.step not in ON_CHAIN_WAIT and not rec.data.get("paused"):
                self._spawn(rec)  # a paused one resumes from _advance_all, when its policy allows
        cores, memory = lent(self.caps, self.s.policy)
        self.log.info("worker_started", resumed=len(self.running), next_block=self.stream.cursor.next_block,
                      cores_lent=cores, memory_lent_mb=memory, runs_at_once=(
                          "the cluster's queue" if self.slurm is not None else
                          f"{self.s.policy.max_concurrent} (max_concurrent)" if self.s.policy.max_concurrent else
                          "as many tasks as the cores and memory lent hold"))
        last_advance = last_leftovers = 0.0
        while not stop.is_set():
            try:
                seen = self.stream.tip
                for rec in await asyncio.to_thread(self._follow):
                    self._spawn(rec)  # a claim of ours the journal had lost (see _adopt)
                # idle on the very block of the last poll: nothing to advance, pause, claim or send (the poll was
                # the tip's one request, so an idle worker may poll often and still see a new job at once)
                if not (self._idle() and seen is not None and self.stream.tip == seen):
                    if self._advance_soon or time.monotonic() - last_advance > 0.5:
                        self._advance_soon = False
                        for rec in await asyncio.to_thread(self._advance_all):
                            self._spawn(rec)  # a task whose pipeline stopped on a transient error
                        last_advance = time.monotonic()
                    await self._enforce_policy()
                    await self._maybe_claim()
                    await self._flush_results()
                    self._warm_app()
                if time.monotonic() - self._peers_checked > self.s.ipfs_peer_check_s:
                    try:
                        await asyncio.to_thread(self._keep_network_peers)
                    except IpfsError as exc:  # our own node away: the tasks that need it say so, and wait for it
                        self.log.warning("ipfs_peer_check_failed", error=str(exc)[:300])
                if time.monotonic() - last_leftovers > HOUSEKEEPING_S:
                    await asyncio.to_thread(self.sandbox.retry_leftovers)  # removals the engine refused earlier
                    await asyncio.to_thread(self._unpin_retained)
                    await asyncio.to_thread(self._drop_old_records)
                    last_leftovers = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the chain, IPFS or Docker away: log, back off, go on
                self.log.warning("loop_error", error=str(exc)[:500], kind=type(exc).__name__)
                self._claims_paused_until = time.monotonic() + 5.0
                await asyncio.sleep(min(5.0, self.s.poll_interval * 8))
            if self.cannot_claim is not None and await self._stopped_by_standing():
                break
            await self._pause(stop)
        await self._drain()
        if self.cannot_claim is not None and self.s.on_ban == "exit":
            raise CannotClaim(self.cannot_claim)

    async def _stopped_by_standing(self) -> bool:
        """The worker may not claim (see :meth:`_standing`): with ``on_ban = exit``, stop once nothing it holds
        is left unfinished; with ``wait``, look again in a minute."""
        if self.s.on_ban == "exit":
            return not self.running and not await asyncio.to_thread(self.journal.unfinished)
        self._claims_paused_until = time.monotonic() + 60.0
        return False

    def _standing(self, info: WorkerRecord) -> str | None:
        """Why this worker cannot claim anything now, in one sentence, or None. Logged once when it changes."""
        params = self._params()
        addr = self.account.address
        reason: str | None = None
        if info.banned:
            reason = (f"worker {addr} is banned by the marketplace after {info.slashes} slashes; it cannot claim "
                      "tasks (see its record with 'tasknet worker status'; only the marketplace owner can unban it)")
        elif info.stake < params.min_stake:
            reason = (f"worker {addr} has {info.stake} wei staked, below the marketplace minimum of "
                      f"{params.min_stake}; stake more with 'tasknet worker stake AMOUNT'")
        if reason != self.cannot_claim:
            if reason is not None:
                self.log.error("worker_cannot_claim", reason=reason, action=self.s.on_ban)
            else:
                self.log.info("worker_can_claim_again")
        self.cannot_claim = reason
        return reason

    def _warm_app(self) -> None:
        """While it holds no task and the market has no open job, make reused containers ready (one per run slot,
        :meth:`Sandbox.prepare`) for the app this worker is likeliest to run next: the last registered one, not
        deprecated, that its app lists allow and whose image the engine holds (the pin is checked; nothing is
        fetched). A job of that app then starts its first tasks without waiting for their containers, as its later
        tasks do. Once per app; another app's run, or a job of other cores or memory, replaces them as needed. The
        first call logs ``worker_warm`` once its output slots (and these containers) are made: the worker then runs
        a job of that app at full speed from its first task."""
        app = None
        if self.slurm is None and self.sandbox.reuse_dir is not None and self._idle():
            policy = self.s.policy
            apps = [a for a in self.view.apps.values() if not a.deprecated and str(a.app_id) not in
                    policy.blocked_apps and (not policy.allowed_apps or str(a.app_id) in policy.allowed_apps)]
            app = max(apps, key=lambda a: a.app_id) if apps else None
            if app is not None and app.app_id == self._warmed_app:
                app = None
        if app is None and self._warm_said:
            return
        first, self._warm_said = not self._warm_said, True
        if app is not None:
            self._warmed_app = app.app_id

        def said(made: int) -> None:
            self.log.info("worker_warm", app_id=None if app is None else app.app_id, containers=made)
        self.sandbox.prepare_async(None if app is None else self.pipeline.warm_spec(app),
                                   run_slots(self.caps, self.s.policy), done=said if first else None)

    def _idle(self) -> bool:
        """Whether the worker holds no task (running or unfinished in its journal) and the market no open job."""
        return not self.running and not self.view.jobs and not self._live

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait one poll interval, or less: until stopped or until a task ends (a slot to fill at once). A worker
        holding no task while the market has no open job waits ``idle_poll_interval`` (a poll costs the same
        however long the worker has run, but it is the whole of an idle worker's CPU: 0.4 % of a core at 0.5 s,
        0.95 % at 0.25 s, 0.25 % at 1 s, measured ad hoc on the devnet)."""
        timeout = max(self.s.poll_interval, self.s.idle_poll_interval) if self._idle() else self.s.poll_interval
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        self._wake.clear()

    async def _drain(self) -> None:
        self.stopping = True
        for key in list(self._queued):  # claimed ahead, not started: given back (see _wait_for_slot)
            if (queued := self.running.get(key)) is not None:
                queued.cancel()
        if self.running:
            self.log.info("draining", tasks=len(self.running), timeout=self.s.drain_timeout)
            pausable = self.s.checkpoint.enabled and self.slurm is None
            # with checkpoints, what cannot finish in time is paused (its grace period within the drain timeout)
            first = max(0.0, self.s.drain_timeout - self.s.checkpoint.grace_s) if pausable else self.s.drain_timeout
            _, pending = await asyncio.wait(list(self.running.values()), timeout=first)
            if pending and pausable:
                pending = await self._pause_for_drain(pending)
            if pending:
                self.log.warning("drain_timeout", unfinished=len(pending))
                if self.slurm is not None:
                    await self._cancel_cluster_jobs(pending)
        await self._settle_drained()
        try:
            await self._flush_results()  # every held result goes now (reason 'drain')
        except Exception as exc:  # noqa: BLE001 - the chain away: the journal keeps them for the next start
            self.log.warning("drain_results_not_sent", held=len(self._held), error=str(exc)[:500])
        self.sandbox.close()
        if self._task_pool is not None:
            self._task_pool.shutdown(wait=False, cancel_futures=True)
        self.cache.close()
        self.ipfs.close()
        self.log.info("worker_stopped")

    async def _pause_for_drain(self, pending: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
        """The drain timeout is near: pause the tasks still running (SIGTERM, the grace period to checkpoint, then
        SIGKILL); the next start resumes them from their folders. Return the tasks still not over."""
        grace = self.s.checkpoint.grace_s
        self.log.info("drain_pausing", tasks=len(pending), grace_s=grace)
        end = time.monotonic() + grace + 30.0
        while pending and time.monotonic() < end:
            await self._pause_running("the worker is stopping (SIGTERM)", now=True)
            _, pending = await asyncio.wait(pending, timeout=1.0)
        return pending

    async def _settle_drained(self) -> None:
        """One last advance of what the drained tasks left for the chain: an R = 1 result held back to go out with
        the others running beside it, a replica to commit, a claim to give back. Left to the next start, it would
        wait for a restart that may come after its claim expired (a slash)."""
        try:
            await asyncio.to_thread(self._advance_all)
        except Exception as exc:  # noqa: BLE001 - the chain away: the journal keeps them for the next start
            self.log.warning("drain_left_unsettled", error=str(exc)[:500], kind=type(exc).__name__,
                             action="the next start submits, commits or gives back what the journal holds")

    async def _cancel_cluster_jobs(self, pending: set[asyncio.Task[Any]]) -> None:
        """(executor 'slurm') The drain timed out: cancel the jobs still queued or running (scancel) and give their
        claims back now, rather than leave them to expire into a slash."""
        assert self.slurm is not None
        self.slurm.stop("its drain timed out")
        await asyncio.wait(pending, timeout=60)
        back = [r for r in await asyncio.to_thread(self.journal.unfinished) if r.step == Step.ABANDONING]
        if back:
            await asyncio.to_thread(self.pipeline.abandon_many, back)
            self.log.info("drain_gave_back", tasks=len(back))

    def _unpin_retained(self) -> None:
        """Unpin the results of jobs that closed more than ``result_retention_s`` ago: the worker's node held
        them for the requester (who pins what it keeps); past that, they are no longer this volunteer's to keep.
        The journal knows which jobs closed (:meth:`_follow` notes them) and lists only what is still pinned."""
        for rec in self.journal.unpin_due(time.time() - self.s.result_retention_s):
            try:
                self.ipfs.unpin(str(rec.data["cid"]))
            except IpfsUnavailable:
                return  # our node is down: next time
            except TasknetError as exc:
                self.log.warning("unpin_failed", job_id=rec.job_id, task_index=rec.task_index, error=str(exc)[:200])
            self.journal.record(rec.job_id, rec.task_index, rec.step, note="result unpinned", unpinned=True)
            self.log.info("result_unpinned", job_id=rec.job_id, task_index=rec.task_index, cid=rec.data["cid"])

    def _drop_old_records(self) -> None:
        """Drop finished records older than ``journal_retention_s`` (a batch per round; totals keep them)."""
        dropped = self.journal.drop_finished(time.time() - self.s.journal_retention_s, limit=1000)
        if dropped:
            self.log.info("journal_records_dropped", count=dropped, older_than_s=self.s.journal_retention_s)

    # -- pauses (checkpoints: see worker/_checkpoint.py) ------------------------------------------------
    def _policy_pause_reason(self) -> str | None:
        """Why the policy stops tasks now (outside its hours; idle-only and the machine busy with other work), or
        None. Never with checkpoints off, nor on a cluster (its tasks run to the end)."""
        if not self.s.checkpoint.enabled or self.slurm is not None:
            return None
        policy = self.s.policy
        load = own = 0.0
        if policy.idle_only:
            load, own = load_average(), sum(self._task_cores.values()) / max(self.caps.cores, 1)
        return policy_closed(policy, dt.datetime.now(), load, own)

    async def _enforce_policy(self) -> None:
        """Pause the running tasks while the policy is closed (they resume, from their checkpoint folders, when it
        opens again: see :meth:`_resume_or_hold`)."""
        if self.running and not self.stopping:
            reason = self._policy_pause_reason()
            if reason is not None:
                await self._pause_running(reason)

    async def _pause_running(self, reason: str, now: bool = False) -> None:
        """Ask every running task to pause: mark it (the pipeline then publishes nothing of its run and raises
        TaskPaused) and ``docker stop`` its container in a thread, again each second while it runs (a container
        may start after the first try). With ``now``, wait for the stops."""
        stops = []
        for key in list(self.running):
            if key in self._queued:
                continue  # not started: it checks the policy when it gets a slot (see _wait_for_slot)
            if key not in self.pipeline.checkpoints.pausing:
                self.pipeline.checkpoints.pausing[key] = reason
                self.log.info("task_pausing", task=key, reason=reason, grace_s=self.s.checkpoint.grace_s)
            stop = self._stops.get(key)
            if stop is None or stop.done():
                stop = self._stops[key] = asyncio.ensure_future(
                    asyncio.to_thread(self.pipeline.checkpoints.stop, container_label(key)))
            stops.append(stop)
        if now and stops:
            await asyncio.wait(stops)

    def _paused(self, rec: TaskRecord, exc: TaskPaused) -> None:
        """The task's run stopped for a pause: journal it (at its step, with why and how long it ran so far)."""
        cur = self.journal.get(rec.job_id, rec.task_index) or rec
        ran = float(cur.data.get("ran_s") or 0.0) + exc.run_seconds
        self.journal.record(cur.job_id, cur.task_index, cur.step, note=f"paused: {exc.reason}", paused=exc.reason,
                            ran_s=round(ran, 3))
        self.log.info("task_paused", job_id=rec.job_id, task_index=rec.task_index, reason=exc.reason,
                      ran_s=round(ran, 3))

    def _resume_or_hold(self, rec: TaskRecord) -> TaskRecord | None:
        """(in a thread) A paused task: given back when its claim would expire before it could run the rest of its
        maxRunSeconds; held while the worker stops or its policy is closed; else resumed (returned: to restart)."""
        job = rec.data["job"]
        end = int(rec.data.get("expiry") or 0)
        if rec.data.get("replica") is not None:  # R > 1: the round's commit window may close before the claim
            window = self.market.task_view(task_id(rec.job_id, rec.task_index)).commit_deadline
            end = min(end, window) if end and window else end or window
        if must_give_back(end, self.market.chain_time(), int(job["max_run_seconds"]),
                          float(rec.data.get("ran_s") or 0.0), self.s.checkpoint.resume_margin_s):
            self._give_back(rec, f"paused ({rec.data['paused']}), its claim would expire before it could resume "
                                 "and finish")
            return None
        if self.stopping or self._policy_pause_reason() is not None:
            return None
        self.log.info("task_resumed", job_id=rec.job_id, task_index=rec.task_index, ran_s=rec.data.get("ran_s"))
        # its run must end by then (the pipeline cuts its wall clock: worker/_checkpoint.py)
        return self.journal.record(rec.job_id, rec.task_index, rec.step, note="resumed", paused=None, run_by=end)

    def _follow(self) -> list[TaskRecord]:
        """Read new events into the view; return claims of ours the journal does not hold (see :meth:`_adopt`)."""
        changed = False
        adopted: list[TaskRecord] = []
        closed: list[int] = []
        while True:
            reorg, events = self.stream.poll()
            if reorg is not None:
                self.log.warning("reorg", ancestor=reorg.common_ancestor, dropped=reorg.dropped)
                self.view = MarketView()  # hints only: rebuilt from the deploy block, claims re-checked on chain
                self.stream.cursor = StreamCursor(next_block=self.s.deploy_block)
                changed = True
                continue
            for ev in events:
                self.view.apply(ev)
                if ev.name in ("TasksClaimed", "ReplicaClaimed") and ev.args["worker"].lower() == self.me_lower:
                    adopted += self._adopt(ev)
                elif ev.name == "LaneClaimed" and ev.args["worker"].lower() == self.me_lower:
                    adopted += self._adopt_lane(ea.LaneClaimed.model_validate(ev.args), ev.block_number, ev.tx_hash)
                elif ev.name == "JobClosed":
                    closed.append(ea.JobRef.model_validate(ev.args).job_id)
            changed = changed or bool(events)
            if self.stream.caught_up:
                break
        self.journal.job_closed(closed)
        if changed:
            self._save()
        return adopted

    def _adopt(self, ev: DecodedEvent) -> list[TaskRecord]:
        """A claim of ours on chain that the journal does not hold (or holds as LOST): a reorg dropped it and the
        node put the transaction back in a later block, or the journal was lost. Unless it is over (expired,
        settled, someone else's now), it is ours to finish: journal it and run it, or its stake is slashed."""
        out: list[TaskRecord] = []
        lease_args = ea.TasksClaimed.model_validate(ev.args) if ev.name == "TasksClaimed" else None
        replica_args = ea.ReplicaClaimed.model_validate(ev.args) if lease_args is None else None
        first = lease_args.start_task_id if lease_args else replica_args.task_id if replica_args else 0
        count = lease_args.count if lease_args else 1
        if all((r := self.journal.get(*split_task_id(t))) is not None and r.step != Step.LOST
               for t in range(first, first + count)):
            return out  # our own claim, journaled when it was made: nothing to ask the chain
        now = self.market.chain_time()
        if lease_args is not None:
            start = lease_args.start_task_id
            lease = self.market.lease_view(start)
            if lease.worker.lower() != self.me_lower or lease.expiry <= now:
                return out
            tids = range(start + lease.done, start + lease.count)
            extra: ClaimData = {"expiry": lease.expiry, "lease": start, "lease_count": lease.count}
            leased = self.view.jobs.get(split_task_id(start)[0])
            if leased is not None and leased.replication != 1:
                extra["credible_lease"] = True  # credibility mode: commitRange and revealRange settle it
        elif replica_args is not None:
            tid, slot = replica_args.task_id, replica_args.replica
            replica = self.market.replica_view(tid, slot)
            task = self.market.task_view(tid)
            if replica.worker.lower() != self.me_lower or task.status != TaskStatus.ACTIVE or \
                    task.committed & (1 << slot) or replica.expiry <= now:
                return out
            tids = range(tid, tid + 1)
            extra = {"replica": slot, "expiry": replica.expiry}
        else:
            return out
        for t in tids:
            job_id, index = split_task_id(t)
            rec = self.journal.get(job_id, index)
            job = self.view.jobs.get(job_id)
            if (rec is not None and rec.step != Step.LOST) or job is None or job.app_id not in self.view.apps:
                continue
            self.log.warning("claim_adopted", job_id=job_id, task_index=index, block=ev.block_number)
            out.append(self._record_claim(job, index, {"blockNumber": ev.block_number,
                                                       "transactionHash": bytes.fromhex(ev.tx_hash[2:])}, extra))
        return out

    def _adopt_lane(self, a: ea.LaneClaimed, block: int, tx: str) -> list[TaskRecord]:
        """A lane of ours on chain that the journal does not hold (see :meth:`_adopt`): unless it is over (committed,
        expired, freed), its tasks are ours to run, or its ``count`` stakes are slashed."""
        job_id, first = split_task_id(a.start_task_id)
        recs = [self.journal.get(job_id, first + i) for i in range(a.count)]
        if all(r is not None and r.step != Step.LOST for r in recs):
            return []
        key = lane_key(a.start_task_id, a.count)
        chunk, lane = self.market.task_view(key), self.market.replica_view(key, a.lane)
        bit = 1 << a.lane
        job = self.view.jobs.get(job_id)
        if (chunk.status != TaskStatus.ACTIVE or not chunk.occupied & bit or chunk.committed & bit or job is None
                or lane.worker.lower() != self.me_lower or lane.expiry <= self.market.chain_time()
                or job.app_id not in self.view.apps):
            return []
        extra: ClaimData = {"expiry": lane.expiry, "lane": a.start_task_id, "lane_count": a.count, "lane_slot": a.lane}
        self.log.warning("lane_adopted", chunk=a.start_task_id, tasks=a.count, block=block)
        return [self._record_claim(job, first + i, {"blockNumber": block, "transactionHash": bytes.fromhex(tx[2:])},
                                   extra, a.count)
                for i, r in enumerate(recs) if r is None or r.step == Step.LOST]

    def _advance_all(self) -> list[TaskRecord]:
        """Advance the tasks waiting on the chain; return the unfinished earlier ones to restart (not running)."""
        restart: list[TaskRecord] = []
        commits: list[TaskRecord] = []
        reveals: list[TaskRecord] = []
        abandons: list[TaskRecord] = []
        held_commits: list[TaskRecord] = []
        changed: list[tuple[TaskRecord, TaskRecord]] = []
        live = self.journal.unfinished()
        self._live = len(live)
        credible: dict[int, int] = {}  # credible leases with a task to settle: first task id -> count
        lanes: dict[int, int] = {}  # lanes with a task to settle: the chunk's first task id -> count
        for rec in live:
            if is_credible_lease(rec) and rec.step >= Step.UPLOADED:
                if rec.task_key not in self.running:
                    start, count = lease_of(rec)
                    credible[start] = count  # commitRange and revealRange once every task of the lease is uploaded
            elif is_lane(rec) and rec.step >= Step.UPLOADED:
                if rec.task_key not in self.running:
                    start, count = lane_of(rec)
                    lanes[start] = count  # commitLane, revealLane, then settled at once or split
            elif rec.step == Step.UPLOADED and rec.data.get("replica") is not None:
                if rec.task_key not in self.running:
                    # R > 1: every uploaded replica held is committed in one transaction; a credibility-mode replica
                    # waits like an R = 1 result for the ones finishing next to it (_held_commits)
                    (held_commits if self._holds_commit(rec) else commits).append(rec)
            elif self._holds_result(rec):
                if rec.task_key not in self.running:
                    self._held.add(rec.task_key)  # held to go with others: _flush_results submits it
            elif rec.step == Step.ABANDONING:
                if rec.task_key not in self.running:
                    abandons.append(rec)
            elif rec.step not in ON_CHAIN_WAIT and rec.data.get("paused"):
                if rec.task_key not in self.running and (resumed := self._resume_or_hold(rec)) is not None:
                    restart.append(resumed)
            elif rec.step not in ON_CHAIN_WAIT:
                retry_at = float(rec.data.get("retry_at") or rec.updated_at + 2.0)
                if rec.task_key not in self.running and time.time() >= retry_at and not self.stopping:
                    restart.append(rec)
            else:
                with bound_contextvars(job_id=rec.job_id, task_index=rec.task_index):
                    changed.append((rec, self.pipeline.advance(rec, reveals)))
        running = set(self.running)
        for start, count in credible.items():
            with bound_contextvars(lease=start):
                changed += self.pipeline.credible.settle(start, count, running)
        for start, count in lanes.items():
            with bound_contextvars(chunk=start):
                changed += self.pipeline.lanes.settle(start, count, running)
        if abandons:
            changed += zip(abandons, self.pipeline.abandon_many(abandons), strict=True)
        if held_commits and self._held_reason(held_commits, self._more_coming(), commits=True) is not None:
            commits += held_commits
        if commits:
            changed += zip(commits, self.pipeline.commit_many(commits), strict=True)
        if reveals := self._reveals_due(reveals, live):
            changed += zip(reveals, self.pipeline.reveal_many(reveals), strict=True)
        for old, new in changed:
            if new.step != old.step:
                self.log.info("task_step", job_id=new.job_id, task_index=new.task_index, step=new.step.name,
                              outcome=new.data.get("outcome"), reason=new.data.get("reason"), batch=new.data.get("batch"))
            if new.finished:
                self.pipeline.cleanup(new)
        return restart

    # -- choosing and claiming ----------------------------------------------------------------------
    def _candidates(self) -> list[tuple[JobView, int, str | None]]:
        """Tasks worth a claim now, best first. Joining a replicated task others started comes before starting
        a fresh one, and a worker with a fresh task still waiting for its peers starts no other, unless its free
        stake stays enough to join as many tasks of others after it as it runs at once: two workers can then never lock
        all their stake in tasks that each wait for the other."""
        me = self.account.address
        if not self.view.jobs:
            return []
        now = self.market.chain_time()
        info = self.market.worker_record(me)
        if self._standing(info) is not None:
            return []
        free_stake = self._free_stake = info.stake - info.locked
        self._verified = info.verified
        replica_stake = max(self._params().replica_stake, 1)
        self._stake_short = free_stake < replica_stake  # held results lock stake: they then go at once
        if self._stake_short:
            return []
        # live tasks only; a task finished here is looked up by key (JournalHolds): nothing scans finished records
        mine = JournalHolds(self.journal)  # a claim a reorg dropped (LOST) may be made again
        waiting_alone = any(
            r.data.get("replica") is not None
            and len(self.view.replicas.get(task_id(r.job_id, r.task_index), {})) <= 1
            for r in self.journal.unfinished())
        out: list[tuple[int, JobView, int, str | None]] = []
        for job in self.view.jobs.values():
            if job.closed or now + job.max_run_seconds + self.s.policy.safety_margin_s > job.deadline:
                continue
            slots = self._slots_for([self._size(job.job_id, job)])  # tasks of this job it runs at once
            if job.app_id not in self.view.apps or not self._accepts(job, info.reputation, now, slots):
                continue
            if self._inputs_too_large(job) is not None or self._avoid.get(job.job_id, 0.0) > time.monotonic():
                continue
            spare = free_stake // replica_stake - slots
            fresh = max(0 if waiting_alone else 1, spare)  # fresh replicated tasks this worker may start now
            out += self._job_candidates(job, mine, fresh, now)
        out.sort(key=lambda c: (0 if self._inputs_cached(c[1], c[2]) else 1, c[0], c[1].job_id, c[2]))
        return [(j, i, a) for _, j, i, a in out]

    def _params(self) -> MarketParams:
        """The protocol parameters, read again at most every PARAMS_TTL seconds (the owner rarely changes them)."""
        if self._params_cache is None or time.monotonic() - self._params_cache[0] > PARAMS_TTL:
            self._params_cache = (time.monotonic(), self.market.market_params())
        return self._params_cache[1]

    def _job_candidates(self, job: JobView, mine: JournalHolds, fresh: int, now: int
                        ) -> list[tuple[int, JobView, int, str | None]]:
        out: list[tuple[int, JobView, int, str | None]] = []
        taken = self.view.taken_in(job.job_id)
        if job.replication == 1 or job.confidence_ppb:  # leases: R = 1, and credible leases in credibility mode
            for start, lease in self.view.leases.items():
                if lease.expiry < now and split_task_id(start)[0] == job.job_id:
                    out.append((2, job, split_task_id(start)[1], f"reopenLease:{start}"))
        if job.replication == 1:
            for i in self.view.free_indexes(job.job_id, job.num_tasks, self._offset(job)):
                if f"{job.job_id}:{i}" not in mine:
                    out.append((1, job, i, None))
                    if len(out) >= 16:
                        break
            return out
        checks = self._check_lanes_allowed(job)
        if self._lanes_allowed(job) or checks:  # a chunk with a lane free comes first, as a task others started does
            for start, chunk in self.view.chunks_of(job.job_id):
                if all(h.worker.lower() != self.me_lower for h in chunk.lanes.values()) and (
                        len(chunk.lanes) < self._lane_target(job)
                        or any(not h.committed and h.expiry < now for h in chunk.lanes.values())):
                    # a credibility-mode job's chunks are check chunks: joined, never started (PROTOCOL.md)
                    out.append((0, job, split_task_id(start)[1], CHECK_LANE if checks else None))
        for index in range(job.num_tasks):
            tid = task_id(job.job_id, index)
            # a credible lease's task sealed for a spot check is taken (leased) but wants a check replica
            if (index in taken and tid not in self.view.replicas) or f"{job.job_id}:{index}" in mine:
                continue
            if job.homogeneous and self.view.classes.get(tid, self.platform_class) != self.platform_class:
                continue  # homogeneous redundancy: bound to another platform class, a claim would revert
            free, held = self.view.open_slots(job, tid, self.account.address)
            busy = len(self.view.replicas.get(tid, {}))
            if held or (not busy and fresh <= 0):
                continue
            if free:
                out.append((0 if busy else 1, job, index, None))
                fresh -= 0 if busy else 1
            elif self.view.expired_replicas(tid, now):
                out.append((0, job, index, "reopenExpired"))
            if len(out) > 16:
                break
        return out

    def _offset(self, job: JobView) -> int:
        """Where this worker starts looking for free tasks of an R = 1 bag (:func:`worker._leases.start_in_bag`):
        the task after its last lease while that is free, an offset of its own before, and the middle of the
        widest free run once another worker's leases reach it; so workers on one bag lease apart."""
        return start_in_bag(self._frontier.get(job.job_id), int(self.account.address, 16),
                            self.view.taken_in(job.job_id).ranges, job.num_tasks, self.s.batching.lease_tasks)

    def _inputs_cached(self, job: JobView, index: int) -> bool:
        """Data-driven scheduling: True when every input of the task is already in the local cache."""
        try:
            refs = self.pipeline._inputs_doc(job.inputs_cid, job.job_id).task(index).inputs
        except (TasknetError, IndexError):
            return False
        return bool(refs) and all(self.cache.contains(r.uri) for r in refs)

    def _inputs_too_large(self, job: JobView) -> str | None:
        """Why this worker's own caps cannot take the job's inputs, from their announced sizes (the dataset's on
        chain, the others' in the inputs document), or None. Checked once per job, before any claim: a cap is the
        worker's environment, and a task claimed then failed for it would be lost to the requester."""
        if job.job_id in self._too_large:
            return self._too_large[job.job_id]
        reason: str | None = None
        cap, whole = self.cache.max_input_bytes, self.cache.max_bytes
        known = self.view.datasets.get(job.dataset_id) if job.dataset_id else None
        dataset = known.size if known is not None else 0
        try:
            single, total = self.pipeline._inputs_doc(job.inputs_cid, job.job_id).largest_inputs()
        except (TasknetError, IndexError):
            single = total = 0  # unreadable now: the task itself will tell (a content failure, or our node)
        if dataset > cap or single > cap:
            reason = (f"an input of {max(dataset, single)} bytes is larger than this worker's cap of {cap} bytes per "
                      "input (max_input_mb)")
        elif dataset + total > whole:
            reason = (f"a task's inputs total {dataset + total} bytes, more than this worker's cache of {whole} bytes "
                      "(policy.cache_max_bytes)")
        if reason is not None:
            self.log.info("job_refused", job_id=job.job_id, reason=reason)
        self._too_large[job.job_id] = reason
        return reason

    def _accepts(self, job: JobView, reputation: int, now: int, slots: int) -> bool:
        offer = Offer(job_id=job.job_id, task_index=0, app=str(job.app_id), requester=job.requester,
                      reward=job.reward, cores=job.cores, memory_mb=job.memory_mb, gpus=job.gpus,
                      arch=0 if not job.arch_mask & ARCH_BITS_MASK
                      or job.arch_mask & ARCH_BITS.get(self.caps.arch, 0)
                      else 255, max_run_s=job.max_run_seconds, deadline=job.deadline,
                      min_reputation=job.min_reputation)
        d = decide(offer, self.caps, self.s.policy, now=dt.datetime.now(), chain_time=now, reputation=reputation,
                   load=load_average() if self.s.policy.idle_only else 0.0, running=len(self.running),
                   gpus_free=self._gpus_free, slots=slots)
        if not d.accept:
            self.log.debug("offer_refused", job_id=job.job_id, reason=d.reason)
        return d.accept

    async def _maybe_claim(self) -> None:
        if self.stopping or time.monotonic() < self._claims_paused_until:
            self._claimable = False
            return  # a dependency is down: no new claims we may not be able to honour
        live = [r for r in await asyncio.to_thread(self.journal.unfinished) if r.step < Step.UPLOADED]
        held = {r.task_key for r in live}
        # GPUs count like slots: those promised to tasks claimed and not yet run (or running) are not free
        self._gpus_free = self.gpus.total - promised_gpus(r.data for r in live)
        if self.slurm is None:
            capacity = self._slots_for({self._size(r.job_id, r.data["job"]) for r in live})
        else:
            capacity = self._cluster_capacity = await asyncio.to_thread(self._capacity)
        busy = len(held | set(self.running))
        slots = capacity - busy
        # R = 1 tasks claimed ahead wait for a slot; more are claimed once none waits, several per lease
        ahead = self.s.batching.claim_ahead if busy <= capacity and self._ranges_allowed() else 0
        if slots <= 0 and (ahead <= 0 or time.monotonic() < self._next_ahead):
            self._claimable = True  # busy: a slot that frees up is filled, and adds a result
            return
        if slots <= 0:
            self._next_ahead = time.monotonic() + AHEAD_RETRY_S  # a look ahead costs reads: not at every poll
        candidates = _within_gpus(await asyncio.to_thread(self._candidates), self._gpus_free)
        self._claimable = bool(candidates)
        plain = [(job, index) for job, index, action in candidates if action is None][:CLAIM_CANDIDATES]
        if plain and self.slurm is None:  # its tasks may be larger than those held: fewer of them fit
            fewer = self._slots_for([self._size(plain[0][0].job_id, plain[0][0])])
            slots, capacity = slots - max(capacity - fewer, 0), min(capacity, fewer)
        # a check chunk's lane first: a credible worker's results wait on it (PROTOCOL.md, "Check lanes")
        for job in {job.job_id: job for job, _, action in candidates if action == CHECK_LANE}.values():
            if slots + ahead <= 0:
                break
            claimed_lane = await asyncio.to_thread(self._claim_lane, job, max(slots, 1))
            for rec in claimed_lane:
                self._spawn(rec)
            if claimed_lane:
                return
        lane_jobs = list({job.job_id: job for job, _ in plain if self._lanes_allowed(job)}.values())
        # a task of a lane job that already has a round of its own (its chunk split, and it wants one more
        # replica) is claimed per task, before any lane: a finished result waits on it
        split = [(job, index) for job, index in plain
                 if self._lanes_allowed(job) and task_id(job.job_id, index) in self.view.replicas]
        if lane_jobs and not split and slots + ahead > 0:
            # jobs served through lanes, best first: one whose chunks have nothing for us (a chunk whose commit
            # window closed, no free task) must not keep this worker from the next job
            await asyncio.sleep(random.uniform(0, self.s.claim_backoff_max))
            for job in lane_jobs:
                room = max(slots, 0) + ahead_for(ahead, capacity, self.s.batching.claim_ahead_s,
                                                 self._seconds_of(job), job.max_run_seconds)
                claimed_lane = await asyncio.to_thread(self._claim_lane, job, max(room, 1))
                for rec in claimed_lane:
                    self._spawn(rec)  # those the run gate does not admit yet wait for a slot
                if claimed_lane:
                    return
        plain = split + [(job, index) for job, index in plain if not self._lanes_allowed(job)]
        if plain and self._ranges_allowed(plain[0][0]) and slots + ahead > 1:
            job = plain[0][0]
            room = max(slots, 0) + ahead_for(ahead, capacity, self.s.batching.claim_ahead_s,
                                             self._seconds_of(job), job.max_run_seconds)
            if room > 1:
                await self._unlock_stake_for(room)
                await asyncio.sleep(random.uniform(0, self.s.claim_backoff_max))
            claimed = await asyncio.to_thread(self._claim_range, job, room) if room > 1 else None
            if claimed is not None:
                for rec in claimed:
                    self._spawn(rec)  # those the run gate does not admit yet wait for a slot
                return
        extra = self._replicas_ahead(plain[0][0], ahead, capacity) if plain else 0
        if slots + extra <= 0 or (slots <= 0 and not plain):
            return
        if plain:
            await asyncio.sleep(random.uniform(0, self.s.claim_backoff_max))
            for rec in await asyncio.to_thread(self._claim_some, plain, max(slots, 0) + extra):
                self._spawn(rec)  # beyond the free slots, it waits for one (_wait_for_slot)
                slots -= 1
        for job, index, action in [c for c in candidates if c[2] not in (None, CHECK_LANE)][:2]:
            if slots <= 0:
                return
            for rec in await asyncio.to_thread(self._reopen_and_claim, job, index, str(action)):
                self._spawn(rec)
                slots -= 1

    def _ran(self, rec: TaskRecord, seconds: float, *, lease: bool = True) -> None:
        """Record that a task of ``rec``'s job ran ``seconds`` here (from its run slot to its upload): for its app
        always, for its job when it is leased (R = 1, or a credible lease)."""
        if lease:
            self._task_seconds.setdefault(rec.job_id, collections.deque(maxlen=16)).append(seconds)
        app = int(rec.data["job"]["app_id"])
        self._app_seconds.setdefault(app, collections.deque(maxlen=16)).append(seconds)

    def _seconds_of(self, job: JobView) -> collections.deque[float] | None:
        """How long ``job``'s tasks take here, to size what an R = 1 or credible lease claims ahead: its own last
        runs; before one ran, its app's last runs here (in any job: a far closer guess than ``maxRunSeconds``,
        which is a bound); None when neither ran here. A lease's expiry is still counted in ``maxRunSeconds`` per
        task, so a wrong guess makes tasks wait in this worker's queue, never miss their expiry."""
        return self._task_seconds.get(job.job_id) or self._app_seconds.get(job.app_id)

    async def _unlock_stake_for(self, room: int) -> None:
        """Held results lock stake. When the stake left free would take less than half of the lease this worker
        could claim with them submitted (``room`` tasks, at most ``lease_tasks``, at most what the free and the
        held stake lock), submit them first (flush reason ``stake``) and read the free stake again. A lease's claim
        costs about the same for 2 tasks as for 16, so a long lease saves more gas than holding the results
        longer would; and the results go only when they lock more than is free, so their batch stays long too."""
        per = max(self._params().replica_stake, 1)
        free, held = self._free_stake // per, len(self._held)
        if held < 2 or 2 * free >= min(room, self.s.batching.lease_tasks, free + held):
            return
        self._stake_bound = True
        try:
            await self._flush_results()
        finally:
            self._stake_bound = False
        info = await asyncio.to_thread(self.market.worker_record, self.account.address)
        self._free_stake = info.stake - info.locked

    def _ranges_allowed(self, job: JobView | None = None) -> bool:
        """Whether this worker claims R = 1 tasks several to a lease (and ahead of its free slots): not through a
        relayer (it takes one result at a time), nor on a cluster (its queue is the cluster's), nor for GPU jobs
        (each task's devices are promised at claim time)."""
        if self.pipeline.relay is not None or self.slurm is not None or self.s.batching.lease_tasks < 2:
            return False
        if job is None or (job.replication == 1 and not job.gpus):
            return True
        # credibility mode: a worker credible alone leases too (commitRange, revealRange; worker/_credible.py), but
        # not a homogeneous job (a lease binds no platform class)
        return (bool(job.confidence_ppb) and self.s.batching.credible_leases and not job.gpus and not job.homogeneous
                and self._verified is not None and self.pipeline.credible.credible_alone(job, self._verified))

    def _lanes_allowed(self, job: JobView) -> bool:
        """Whether this worker serves R > 1 ``job`` through lanes (``batching.lanes``; PROTOCOL.md, "Lanes"): a
        fixed-R job without a callback (its chunks would need every callback in one transaction), not GPU jobs (a
        task's devices are promised at claim time), not homogeneous ones, not through a relayer or a cluster, and not
        a job one of whose chunks this worker dissolved for want of other lanes (:class:`worker._lanes.LaneRounds`)."""
        return (self.s.batching.lanes and job.replication > 1 and not job.confidence_ppb and not job.gpus
                and not job.homogeneous and int(job.callback, 16) == 0 and self.pipeline.relay is None
                and self.slurm is None and job.job_id not in self.pipeline.lanes.dissolved_jobs)

    def _check_lanes_allowed(self, job: JobView) -> bool:
        """Whether this worker joins the check chunks of credibility-mode ``job`` (PROTOCOL.md, "Check lanes": a
        spot check of a whole credible lease): as :meth:`_lanes_allowed` says of lanes, but for credibility mode."""
        return (self.s.batching.lanes and bool(job.confidence_ppb) and not job.gpus and not job.homogeneous
                and int(job.callback, 16) == 0 and self.pipeline.relay is None and self.slurm is None)

    @staticmethod
    def _lane_target(job: JobView) -> int:
        """Lanes per chunk: the job's R; two in credibility mode (the lease's and its check)."""
        return 2 if job.confidence_ppb else job.replication

    def _claim_lane(self, job: JobView, room: int) -> list[TaskRecord]:
        """Lease a lane of ``job``: join a chunk other workers started (the fullest first, while its commit window
        leaves this worker time to run it), else start a chunk of free tasks (at most ``batching.lane_tasks``, as
        :meth:`_lease_run` sizes a lease of ``room``) unless a chunk of ours still waits alone for its other lanes. A
        credibility-mode job's chunks are check chunks (``checkLease``): joined while their commit window is open,
        never started."""
        me = self.me_lower
        target = self._lane_target(job)
        check = bool(job.confidence_ppb)
        chunks = self.view.chunks_of(job.job_id)
        now = self.market.chain_time()
        units = self._free_stake // max(self._params().replica_stake, 1)  # a lane locks a replica stake per task
        for start, c in chunks:  # a lane past its expiry without a commit: its worker is slashed, the lane freed
            if any(not h.committed and h.expiry < now and h.worker.lower() != me for h in c.lanes.values()):
                self._reopen_lanes(start, c.count)
                c.lanes = {i: h for i, h in c.lanes.items() if h.committed or h.expiry >= now}
        # a chunk past its join window (its first claim plus the claim grace) is about to be dissolved: not joined
        # (a check chunk is never dissolved: its commit window alone bounds the join)
        joinable = sorted(((start, c) for start, c in chunks if len(c.lanes) < target and c.count <= units
                           and all(h.worker.lower() != me for h in c.lanes.values())
                           and (check or min((h.expiry for h in c.lanes.values()), default=now + 1)
                                - c.count * job.max_run_seconds >= now)),
                          key=lambda sc: (-len(sc[1].lanes), sc[0]))
        for start, c in joinable:
            if any(h.committed for h in c.lanes.values()):  # its commit window is open: only if we make it
                window = self.market.task_view(lane_key(start, c.count)).commit_deadline
                if window and self.market.chain_time() + c.count * self._expected_run(job) > window:
                    continue
            got = self._send_lane(job, start, c.count)
            if got:
                return got
        if check:
            return []
        if any(len(c.lanes) < target and any(h.worker.lower() == me for h in c.lanes.values())
               for _, c in chunks):
            return []  # ours waits for its other lanes: more of its kind would lock stake for nothing
        # a new chunk leaves half the free stake to join the chunks others start (two workers must not each lock
        # all of theirs in a chunk of their own that waits for the other: it would wait out the claim grace)
        run = self._lease_run(job, min(room, self.s.batching.lane_tasks, max(units // 2, 1)))
        if run is None:  # one free task in a row at most: a chunk of one
            first = next(iter(self.view.free_indexes(job.job_id, job.num_tasks, self._offset(job))), None)
            if first is None:
                return []
            run = (first, 1)
        return self._send_lane(job, task_id(job.job_id, run[0]), run[1])

    def _refusal(self, exc: Exception, fn: Any) -> str:
        """What a refused call or transaction of ``fn`` says, for the log: its custom error decoded with its values
        (``claimLane from 0x… reverted with MarketplaceTaskTaken(taskId=…)``), else the node's own words."""
        if isinstance(exc, ContractLogicError):
            exc = reverted_error(exc, [fn.contract_abi, *self.market.error_abis], f"{fn.fn_name} from {self.account.address}")
        text = exc.message if isinstance(exc, Web3RPCError) else str(exc)
        return str(text)[:300]

    def _reopen_lanes(self, start: int, count: int) -> None:
        """``reopenLanes``: the chunk's lanes past their expiry without a commit are slashed and freed (anyone may
        call it; a lost race to it is no error)."""
        fn = self.market.contract.functions.reopenLanes(start, count)
        try:
            fn.call({"from": self.account.address}, block_identifier="pending")
            self.sender.transact(fn, pending=True)
            self.log.warning("lanes_reopened", chunk=start, tasks=count)
        except (TransactionReverted, ContractLogicError, Web3RPCError) as exc:
            self.log.info("reopen_lanes_refused", chunk=start, error=self._refusal(exc, fn))

    def _send_lane(self, job: JobView, start: int, count: int) -> list[TaskRecord]:
        """``claimLane(start, count)``, simulated on the pending state first (a chunk another worker filled or
        took meanwhile sends nothing)."""
        fn = self.market.contract.functions.claimLane(start, count)
        try:
            fn.call({"from": self.account.address}, block_identifier="pending")
            receipt = self.sender.transact(fn, pending=True)
        except (TransactionReverted, ContractLogicError, Web3RPCError) as exc:
            self.log.info("claim_lane_refused", chunk=start, tasks=count, error=self._refusal(exc, fn))
            return []
        out: list[TaskRecord] = []
        for ev in self.market.contract.events.LaneClaimed().process_receipt(receipt, errors=DISCARD):
            a = ea.LaneClaimed.model_validate(ev["args"])
            if a.worker == self.account.address and a.start_task_id == start:
                extra: ClaimData = {"expiry": a.expiry, "lane": start, "lane_count": a.count, "lane_slot": a.lane}
                first = split_task_id(start)[1]
                out += [self._record_claim(job, first + i, receipt, extra, a.count) for i in range(a.count)]
                self.log.info("lane_claimed", chunk=start, tasks=a.count, lane=a.lane)
        return out

    def _claim_range(self, job: JobView, room: int) -> list[TaskRecord] | None:
        """Claim consecutive free tasks of R = 1 ``job`` from its first free one at or after this worker's offset
        into the bag, in one lease (``claimFreeRange``):
        as many as :func:`worker._leases.range_size` allows of ``room``. The call is simulated on the pending state
        first, so a lost race sends nothing, and a race lost after that claims fewer tasks (or none) instead of
        reverting. None when a single task is all it would take (the caller then claims as usual); [] when
        nothing was claimed."""
        run = self._lease_run(job, room)
        return None if run is None else self._send_lease(job, *run)

    def _lease_run(self, job: JobView, room: int) -> tuple[int, int] | None:
        """(first index, count) of the run of free tasks :meth:`_claim_range` leases: from the first free task at
        or after this worker's offset into the bag, as many as :func:`worker._leases.range_size` allows; None when
        it would hold fewer than two."""
        taken, mine = self.view.taken_in(job.job_id), JournalHolds(self.journal)
        replicas = self.view.replicas  # credibility mode: tasks claimed one by one are not free for a lease

        def leasable(i: int) -> bool:
            return f"{job.job_id}:{i}" not in mine and task_id(job.job_id, i) not in replicas

        first = next((i for i in self.view.free_indexes(job.job_id, job.num_tasks, self._offset(job))
                      if leasable(i)), None)
        if first is None:
            return None
        now = self.market.chain_time()
        params = self._params()
        holders = {lease.worker.lower() for start, lease in self.view.leases.items()
                   if split_task_id(start)[0] == job.job_id} | {self.me_lower}
        fits = (job.deadline - now - params.claim_grace - self.s.policy.safety_margin_s) // max(
            job.max_run_seconds, 1)
        k = range_size(room, lease_tasks=self.s.batching.lease_tasks, free_tasks=job.num_tasks - len(taken),
                       holders=len(holders), fits=fits, stake_for=self._free_stake // max(params.replica_stake, 1),
                       least=max(tail_least(self.s.batching.lease_least_s, self._slots_for([self._size(job.job_id, job)]),
                                            self._seconds_of(job)),
                                 self.s.batching.credible_lease_least if job.confidence_ppb else 1))

        def run_from(i: int) -> int:
            n = 0
            while n < k and i + n < job.num_tasks and i + n not in taken and leasable(i + n):
                n += 1
            return n

        count = run_from(first)
        if count < 2 and k >= 2:  # the offset fell at the end of a free run: the bag's first run that holds two
            # (among its first free tasks only: a look that costs the same in a bag of 100 or 100,000)
            look = itertools.islice(self.view.free_indexes(job.job_id, job.num_tasks), 4 * self.s.batching.lease_tasks)
            first = next((i for i in look if run_from(i) >= 2), first)
            count = run_from(first)
        return None if count < 2 else (first, count)

    def _send_lease(self, job: JobView, first: int, count: int) -> list[TaskRecord] | None:
        """Claim tasks ``first`` .. ``first + count - 1`` of ``job`` in one ``claimFreeRange``, simulated on the
        pending state first (see :meth:`_claim_range`)."""
        start = task_id(job.job_id, first)
        fn = self.market.contract.functions.claimFreeRange(start, count)
        try:
            if int(fn.call({"from": self.account.address}, block_identifier="pending")) < 2:
                return None  # taken meanwhile, or one task left in a row: claimed as usual
        except (ContractLogicError, Web3RPCError) as exc:
            self.log.info("claim_range_refused", job_id=job.job_id, first=first, tasks=count,
                          error=self._refusal(exc, fn), action="claim one by one")
            return None
        try:
            receipt = self.sender.transact(fn, pending=True)
        except TransactionReverted as exc:
            self.log.warning("claim_reverted", job_id=job.job_id, first=first, tasks=count, error=exc.error_name,
                             detail=str(exc)[:300], tx=exc.tx_hash)
            return []
        out: list[TaskRecord] = []
        for ev in self.market.contract.events.TasksClaimed().process_receipt(receipt, errors=DISCARD):
            a = ea.TasksClaimed.model_validate(ev["args"])
            if a.worker == self.account.address and a.start_task_id == start:
                extra: ClaimData = {"expiry": a.expiry, "lease": start, "lease_count": a.count}
                if job.replication != 1:
                    extra["credible_lease"] = True
                out += [self._record_claim(job, first + i, receipt, extra, a.count) for i in range(a.count)]
                self._frontier = {j: f for j, f in self._frontier.items() if j in self.view.jobs}
                self._frontier[job.job_id] = first + a.count
        return out

    def _too_late_to_join(self, job: JobView, index: int) -> bool:
        """(R > 1) A task whose round's commit window would close before this worker could run it and commit: a
        replica that cannot commit in time is slashed. The run is expected to take what this job's runs took here
        (twice the longest, plus a margin), or its whole maxRunSeconds when this worker has run none of it yet."""
        if job.replication == 1 or not self.view.replicas.get(task_id(job.job_id, index)):
            return False
        deadline = self.market.task_view(task_id(job.job_id, index)).commit_deadline
        if deadline == 0:
            return False  # nobody committed yet: the window opens with the first commit, ours included
        return self.market.chain_time() + self._expected_run(job) > deadline

    def _expected_run(self, job: JobView) -> int:
        """Seconds a task of ``job`` is expected to take here, fetch, run, upload and commit included."""
        seen = self._run_times.get(job.job_id)
        if not seen:
            return job.max_run_seconds
        return min(job.max_run_seconds, int(2 * max(seen)) + JOIN_MARGIN_S)

    def _replicas_ahead(self, job: JobView, ahead: int, capacity: int) -> int:
        """Replicas of ``job`` this worker claims beyond its free slots (:func:`worker._leases.replicas_ahead`, for
        the jobs :func:`worker._leases.replicas_go_ahead` allows): claims then go several to a ``claimSome``, as
        R = 1 tasks go several to a lease."""
        if ahead <= 0 or not replicas_go_ahead(job):
            return 0
        seen = self._run_times.get(job.job_id)
        # each replica locks a replica stake: what stays free must still join `capacity` tasks of others (the rule
        # of _candidates that keeps two workers from locking all their stake in tasks each waiting for the other)
        spare = self._free_stake // max(self._params().replica_stake, 1) - 2 * capacity
        return min(max(spare, 0), replicas_ahead(ahead, capacity, self.s.batching.claim_ahead_s, seen,
                                                 job.max_run_seconds, self._expected_run(job)))

    def _claim_some(self, batch: list[tuple[JobView, int]], slots: int) -> list[TaskRecord]:
        """Claim up to ``slots`` of ``batch``, in order, in one ``claimSome`` transaction: tasks another worker
        took first are skipped by the contract, so a lost race costs no reverted transaction. When a call on the
        pending state says none is left, nothing is sent at all (information, not an error)."""
        batch = [(job, index) for job, index in batch if not self._too_late_to_join(job, index)]
        if not batch:
            return []
        c = self.market.contract
        tids = [task_id(job.job_id, index) for job, index in batch]
        fn = c.functions.claimSome(tids, slots)
        try:
            if int(fn.call({"from": self.account.address}, block_identifier="pending")) == 0:
                self.log.info("claim_lost_race", tasks=len(tids), first=tids[0])
                return []
            # the pending state may put a rival's claim before ours that the block puts after: ours then claims
            # more than simulated, so it gets the gas of every claim it may make (unused gas is not paid)
            receipt = self.sender.transact(fn, pending=True, min_gas=CLAIM_BASE_GAS + CLAIM_GAS * min(slots, len(tids)))
        except (TransactionReverted, ContractLogicError, Web3RPCError) as exc:
            self.log.warning("claim_refused", tasks=len(tids), error=self._refusal(exc, fn))
            return []
        claimed: dict[int, ClaimData] = {}
        for ev in c.events.ReplicaClaimed().process_receipt(receipt, errors=DISCARD):
            r = ea.ReplicaClaimed.model_validate(ev["args"])
            if r.worker == self.account.address:
                claimed[r.task_id] = {"replica": r.replica, "expiry": r.expiry}
        for ev in c.events.TasksClaimed().process_receipt(receipt, errors=DISCARD):
            t = ea.TasksClaimed.model_validate(ev["args"])
            if t.worker == self.account.address:
                claimed[t.start_task_id] = {"expiry": t.expiry, "lease": t.start_task_id, "lease_count": 1}
        if len(claimed) < min(slots, len(tids)):
            self.log.info("claim_lost_race", tasks=len(tids), claimed=len(claimed))
        return [self._record_claim(job, index, receipt, claimed[tid], len(claimed))
                for (job, index), tid in zip(batch, tids, strict=True) if tid in claimed]

    def _record_claim(self, job: JobView, index: int, receipt: Any, extra: ClaimData, batch: int = 1
                      ) -> TaskRecord:
        dataset = self.view.datasets.get(job.dataset_id) if job.dataset_id else None
        self.log.info("task_claimed", job_id=job.job_id, task_index=index, replica=extra.get("replica"), batch=batch)
        return self.journal.record(job.job_id, index, Step.CLAIMED, job=job.model_dump(mode="json"),
                                   app=self.view.apps[job.app_id].model_dump(),
                                   dataset=dataset.model_dump() if dataset is not None else None,
                                   claim_block=receipt["blockNumber"], claim_tx=receipt["transactionHash"].hex(), **extra)

    def _reopen_and_claim(self, job: JobView, index: int, action: str) -> list[TaskRecord]:
        """Reopen an expired claim (anyone may: its holder is slashed), then claim the task if it is an R > 1
        replica slot (the tasks of a reopened lease show up as free on the next poll)."""
        tid = task_id(job.job_id, index)
        fns = self.market.contract.functions
        try:
            if action == "reopenExpired":
                self.sender.transact(fns.reopenExpired(tid), gas=TIME_GATED_GAS)
            elif action.startswith("reopenLease:"):
                self.sender.transact(fns.reopenLease(int(action.split(":")[1])), gas=TIME_GATED_GAS)
                return []
        except TransactionReverted as exc:
            if exc.error_name in LOST_RACE:  # someone reopened it first: information, not an error
                self.log.info("reopen_lost_race", job_id=job.job_id, task_index=index, error=exc.error_name,
                              detail=str(exc)[:300])
            else:
                self.log.warning("reopen_refused", job_id=job.job_id, task_index=index, error=str(exc))
            return []
        return self._claim_some([(job, index)], 1)

    def _spawn(self, rec: TaskRecord) -> None:
        size = self._size(rec.job_id, rec.data["job"])

        async def go() -> None:
            slot = False  # holds its share of the gate's run slots (released at the end)
            try:
                if self._gate is not None:
                    slot = await self._wait_for_slot(rec, size)
                    if not slot:
                        return
                began = time.monotonic()
                with bound_contextvars(job_id=rec.job_id, task_index=rec.task_index):
                    if self._task_pool is None:
                        new = await asyncio.to_thread(self.pipeline.run, rec)
                    else:  # a cluster's task may wait long in its queue: not in the loop's shared threads
                        ctx = contextvars.copy_context()
                        new = await asyncio.get_running_loop().run_in_executor(
                            self._task_pool, ctx.run, self.pipeline.run, rec)
                self.log.info("task_step", job_id=rec.job_id, task_index=rec.task_index, step=new.step.name)
                if self._holds_result(new):
                    self._held.add(new.task_key)  # journaled: held to go on chain with others (_flush_results)
                    self._ran(rec, time.monotonic() - began)
                elif new.step == Step.UPLOADED:
                    self._advance_soon = True  # a replica to commit, or a credible lease to commit and reveal
                    # from its start in a slot: a replica claimed ahead waited for the slot before (not its run)
                    self._run_times.setdefault(rec.job_id, []).append(time.monotonic() - began)
                    # a credible lease's run time sizes the job's next leases' claim ahead, as for R = 1
                    self._ran(rec, time.monotonic() - began, lease=is_credible_lease(new) or is_lane(new))
                if new.finished:
                    self.pipeline.cleanup(new)
            except TaskPaused as exc:
                self._paused(rec, exc)  # its folder is kept: _advance_all resumes it, or gives it back
            except EnvironmentFailure as exc:
                self._give_back(rec, str(exc))
                if isinstance(exc, GpuUnavailable) and exc.engine:
                    await asyncio.to_thread(self._refresh_gpus)
            except Exception as exc:  # noqa: BLE001 - whatever it was, the task is journaled and retried or given up
                self._task_error(rec, exc)
            finally:
                if slot and self._gate is not None:
                    self._gate.release(size)
                self.running.pop(rec.task_key, None)
                self._batched_running.discard(rec.task_key)
                self._task_cores.pop(rec.task_key, None)
                self.pipeline.checkpoints.pausing.pop(rec.task_key, None)
                self._stops.pop(rec.task_key, None)
                self._wake.set()

        self._batched_running.add(rec.task_key)  # its result or commit will join the held ones
        self._task_cores[rec.task_key] = size.cores
        self.running[rec.task_key] = asyncio.create_task(go())

    async def _wait_for_slot(self, rec: TaskRecord, size: Size) -> bool:
        """Wait until the run gate admits the task, of ``size`` (tasks claimed ahead queue here). True: it holds
        its share of the run slots (the caller gives it back). False: it holds none and is not to run now (see
        :meth:`_may_start`; cancelled by :meth:`_drain`, it is given back)."""
        assert self._gate is not None
        queued = self._gate.would_wait(size)
        if queued:
            self._queued.add(rec.task_key)
        try:
            await self._gate.acquire(size)
        except asyncio.CancelledError:
            self.journal.record(rec.job_id, rec.task_index, Step.ABANDONING, note=STOPPED_QUEUED, reason=STOPPED_QUEUED)
            return False
        finally:
            self._queued.discard(rec.task_key)
        if not queued or await self._may_start(rec):
            return True  # the caller runs it in this slot and gives the slot back
        self._gate.release(size)
        return False

    async def _may_start(self, rec: TaskRecord) -> bool:
        """(A task that waited for a slot) Whether it may run now: not if it was given back with its lease (or
        settled) meanwhile; not if the worker stops (it is given back) or the policy closed (it is paused)."""
        cur = await asyncio.to_thread(self.journal.get, rec.job_id, rec.task_index)
        if cur is None or cur.step >= Step.UPLOADED:
            return False  # given back with its lease (or settled) while it waited
        if self.stopping:
            self.journal.record(rec.job_id, rec.task_index, Step.ABANDONING, note=STOPPED_QUEUED, reason=STOPPED_QUEUED)
            return False
        if (reason := self._policy_pause_reason()) is not None:
            self.journal.record(rec.job_id, rec.task_index, cur.step, note=f"paused: {reason}", paused=reason)
            return False
        if (late := await asyncio.to_thread(self._replica_late, cur)) is not None:
            self.journal.record(rec.job_id, rec.task_index, Step.ABANDONING, note=late, reason=late)
            self._advance_soon = True
            return False
        return True

    def _replica_late(self, rec: TaskRecord) -> str | None:
        """(A replica of an R > 1 task claimed ahead, that waited for a slot) Why it can no longer commit in time if
        it starts now, or None: its claim's expiry or its round's commit window (opened meanwhile by another
        replica's commit) would close before a run of the job here ends. It is then given back (a fee), not run into
        a slash."""
        if rec.data.get("replica") is None or int(rec.data["job"].get("confidence_ppb") or 0):
            return None
        job = JobView.model_validate(rec.data["job"])
        deadline = self.market.task_view(task_id(rec.job_id, rec.task_index)).commit_deadline
        return replica_late(self.market.chain_time() + self._expected_run(job), int(rec.data.get("expiry") or 0),
                            deadline)

    # -- held R = 1 results -----------------------------------------------------------------------------
    def _holds_result(self, rec: TaskRecord) -> bool:
        """Whether ``rec`` is an R = 1 result this daemon holds to submit with others (uploaded, journaled, not
        relayed: a relayer takes each result as it comes), or an R = 1 task to give back: both go through the
        lease, in its task order (:meth:`_flush_held`)."""
        return (rec.step in (Step.UPLOADED, Step.ABANDONING) and self.pipeline.relay is None
                and int(rec.data["job"]["replication"]) == 1)

    def _holds_commit(self, rec: TaskRecord) -> bool:
        """Whether ``rec``, an uploaded replica, is held to commit with the others finishing next to it (not
        through a relayer: it takes each as it comes). A credibility-mode task usually wants no other replica, so
        nobody waits on its commit but its own reveal; an R > 1 task's other replicas wait at most ``hold_s`` more
        for their reveal phase, and each commit saves most of a transaction's fixed cost."""
        return self.pipeline.relay is None

    def _reveals_due(self, ready: list[TaskRecord], live: list[TaskRecord]) -> list[TaskRecord]:
        """Of the reveals whose phase is open (``ready``, collected by the pipeline's advance), those to send now.
        An R > 1 reveal is held by the rule of held results (:func:`worker._batching.flush_reason`, its deadline
        the round's reveal deadline) while another reveal of this worker may join it: a replica of it still
        running, uploaded or committed. The others (credibility mode) go at once."""
        if not ready:
            self._reveal_since.clear()
            self.pipeline.reveal_deadlines.clear()
            return []
        replicated = [r for r in ready if not int(r.data["job"].get("confidence_ppb") or 0)]
        keys = {r.task_key for r in replicated}
        for key in set(self._reveal_since) - keys:  # revealed another way (late, or a reorg), or settled
            del self._reveal_since[key]
        deadlines = self.pipeline.reveal_deadlines  # set again by each advance
        for key in set(deadlines) - keys:
            del deadlines[key]
        if not replicated:
            return ready
        now = time.time()
        held = [Held(self._reveal_since.setdefault(r.task_key, now), deadlines.get(r.task_key, 0)) for r in replicated]
        more = bool(self._batched_running) or any(
            r.data.get("replica") is not None and r.step in (Step.UPLOADED, Step.COMMITTED) and r.task_key not in keys
            for r in live)
        if flush_reason(held, now=now, chain_now=self.market.clock.now(), more_coming=more, stopping=self.stopping,
                        claims_blocked=self._stake_short or self._stake_bound, rule=self.s.batching) is None:
            return [r for r in ready if r.task_key not in keys]
        for key in keys:
            self._reveal_since.pop(key, None)
        return ready

    def _held_reason(self, recs: list[TaskRecord], more_coming: bool, commits: bool = False) -> str | None:
        """Why the held results or ``commits`` ``recs`` must go now (:func:`worker._batching.flush_reason`), or
        None. A commit's time runs to its claim's expiry or, when sooner, its round's commit deadline (opened by
        another replica's commit before this one joined)."""
        def due(r: TaskRecord) -> int:
            expiry = int(r.data.get("expiry") or 0)
            if not commits or not expiry:
                return expiry
            deadline = self.market.task_view(task_id(r.job_id, r.task_index)).commit_deadline
            return min(expiry, deadline) if deadline else expiry

        return flush_reason([Held(r.updated_at, due(r)) for r in recs], now=time.time(),
                            chain_now=self.market.clock.now(), more_coming=more_coming, stopping=self.stopping,
                            claims_blocked=self._stake_short or self._stake_bound, rule=self.s.batching)

    def _more_coming(self) -> bool:
        """Whether another result or commit may join the held ones: a task of that kind runs, or one may be
        claimed now."""
        return bool(self._batched_running) or (self._claimable and not self.stopping)

    async def _flush_results(self) -> None:
        """Submit the held R = 1 results together when :func:`worker._batching.flush_reason` says they must go."""
        if not self._held:
            return
        keys = [k for k in self._held if k not in self.running]
        running = set(self.running) - self._queued
        self._held.difference_update(await asyncio.to_thread(self._flush_held, keys, self._more_coming(), running))

    def _flush_held(self, keys: list[str], more_coming: bool, running: set[str]) -> list[str]:
        """(in a thread) Read the held results and give-backs ``keys`` from the journal; when they must go (a
        give-back goes at once), send what each of their leases may take now, in task order
        (:func:`worker._leases.plan_lease`), up to ``batching.max_results`` tasks per transaction. ``running``:
        the tasks running now. Return the keys no longer held."""
        recs: list[TaskRecord] = []
        gone: list[str] = []
        for key in keys:
            job_id, index = key.split(":")
            rec = self.journal.get(int(job_id), int(index))
            if rec is not None and self._holds_result(rec):
                recs.append(rec)
            else:
                gone.append(key)  # submitted, lost or given up meanwhile
        giving_back = any(r.step == Step.ABANDONING for r in recs)
        reason = "give-back" if giving_back else self._held_reason(recs, more_coming)
        if reason is None:
            return gone
        ops: list[LeaseOp] = []
        changed: list[tuple[TaskRecord, TaskRecord]] = []
        by_lease: dict[int, list[TaskRecord]] = {}
        for r in recs:
            by_lease.setdefault(lease_of(r)[0], []).append(r)
        for start, mates in sorted(by_lease.items()):
            lease = self.market.lease_view(start)
            if lease.worker.lower() != self.me_lower:  # over: settled, given back, or expired and reopened
                changed += self.pipeline.resolve_gone_lease(start, mates)
                continue
            plan = plan_lease(start, lease.count, lease.done, self._record_of, running,
                              is_failure)
            changed += self.pipeline.resolve_gone_lease(start, plan.settled)
            ops += plan.ops
        for chunk in chunk_ops(ops, self.s.batching.max_results):
            changed += self.pipeline.settle_leases(chunk, reason)
        for old, new in changed:
            self.log.info("task_step", job_id=new.job_id, task_index=new.task_index, step=new.step.name,
                          outcome=new.data.get("outcome"), reason=new.data.get("reason"), batch=new.data.get("batch"))
            if new.finished:
                self.pipeline.cleanup(new)
            gone.append(old.task_key)
        return gone

    def _record_of(self, tid: int) -> TaskRecord | None:
        return self.journal.get(*split_task_id(tid))

    def _give_back(self, rec: TaskRecord, reason: str) -> None:
        """This worker's environment failed the task (see :class:`EnvironmentFailure`): give the claim back
        (batched, by the next advance) instead of letting it expire into a slash, and avoid the job while the cause
        may last (``avoid_job_s``): another worker, whose node reaches the input, runs it."""
        self.journal.record(rec.job_id, rec.task_index, Step.ABANDONING, note=reason, reason=reason)
        start, count = lease_of(rec)
        later = range(rec.task_index + 1, split_task_id(start)[1] + count)
        queued = set(self._queued) if later else set()  # this may run in a thread: a copy of the loop's set
        for index in later:
            if f"{rec.job_id}:{index}" in queued:  # its lease goes back with it: never started
                note = f"given back with task {rec.task_index} of its lease"
                self.journal.record(rec.job_id, index, Step.ABANDONING, note=note, reason=note)
        self._avoid[rec.job_id] = time.monotonic() + self.s.avoid_job_s
        self._advance_soon = True
        self.log.warning("task_given_back", job_id=rec.job_id, task_index=rec.task_index, reason=reason,
                         avoid_job_s=self.s.avoid_job_s)

    def _task_error(self, rec: TaskRecord, exc: Exception) -> None:
        """A task's pipeline stopped on ``exc``. A dependency that is down (chain, IPFS, Docker, disk) is not the
        task's fault: retry with a growing pause, stop claiming meanwhile, and give the task up only when its
        claim can no longer be met. Any other error counts; MAX_ATTEMPTS of them give the task up."""
        cur = self.journal.get(rec.job_id, rec.task_index) or rec
        transient = _is_unavailable(exc)
        attempts = int(cur.data.get("attempts", 0)) + (0 if transient else 1)
        outages = int(cur.data.get("outages", 0)) + (1 if transient else 0)
        pause = min(60.0, 2.0 * 2 ** min(outages + attempts, 5))
        expiry = int(cur.data.get("expiry") or 0)
        # the chain's clock estimated without a request: the chain may be the dependency that is down
        chain_now = self.market.clock.now()
        expired = bool(expiry) and chain_now > expiry and cur.step < Step.UPLOADED
        if transient and expiry and not expired and cur.step < Step.UPLOADED and \
                chain_now + pause + ABANDON_MARGIN_S > expiry:
            # the outage may outlast the claim: give it back while it is live (a fee) rather than be slashed
            self._give_back(cur, f"{type(exc).__name__}: {exc}"[:500] + " (the claim would expire first)")
            return
        step = cur.step
        if expired:
            step = Step.LOST
        elif attempts >= MAX_ATTEMPTS:
            step = Step.FAILED
        error = f"{type(exc).__name__}: {exc}"[:2000]
        new = self.journal.record(rec.job_id, rec.task_index, step, note=error, attempts=attempts, outages=outages,
                                  error=error, retry_at=time.time() + pause)
        if new.finished:
            self.pipeline.cleanup(new)  # its checkpoint folder too
        if transient:
            self._claims_paused_until = time.monotonic() + pause
        self.log.error("task_error", job_id=rec.job_id, task_index=rec.task_index, error=error,
                       transient=transient, attempts=attempts, retry_in_s=pause, gave_up=step.name
                       if step in (Step.FAILED, Step.LOST) else None)


class JournalHolds:
    """``"job:index" in holds``: the journal holds that task at a step other than LOST (primary-key lookups, so a
    claim attempt costs the same with 100 or 100,000 finished records)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        job_id, index = key.split(":")
        return self.journal.holds(int(job_id), int(index))


def _within_gpus(candidates: list[tuple[JobView, int, str | None]], free: int
                 ) -> list[tuple[JobView, int, str | None]]:
    """``candidates`` in order, keeping GPU tasks only while their GPUs add up to at most ``free``: whichever of
    them a claim gets, their GPUs are there when they run (CPU tasks are all kept)."""
    out = []
    for job, index, action in candidates:
        if job.gpus:
            if job.gpus > free:
                continue
            free -= job.gpus
        out.append((job, index, action))
    return out


def lock_state_dir(state_dir: Path) -> int:
    """Take the state folder for this process: an exclusive ``flock`` on ``worker.lock`` inside it, holding our
    pid. Two daemons on one folder would corrupt each other's tasks (one journal, one set of task folders), so a
    second one refuses to start and names the pid that holds the folder. The lock goes with the process, however
    it ends (the kernel releases it), so a crashed daemon never leaves a stale lock. Returns the descriptor."""
    path = state_dir / "worker.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateDirInUse(f"another worker (pid {holder}) is running on the state folder {state_dir}; stop it "
                            "first, or give this one a folder of its own (--state-dir)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _is_unavailable(exc: BaseException) -> bool:
    """True for errors that say a dependency is down, not that the task is wrong."""
    import requests

    if isinstance(exc, IpfsUnavailable | RpcUnavailable | SandboxError | requests.RequestException
                  | docker.errors.DockerException | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EIO


def _docker_or_fail() -> docker.DockerClient:
    try:
        client = docker.from_env()
        if client.api.base_url.startswith("http+docker://"):
            # a local socket: no proxy applies, and requests would otherwise look the environment's proxies up
            # again for every call of every task (about 3 % of the worker's CPU, py-spy)
            client.api.trust_env = False
        client.ping()
        return client
    except Exception as exc:
        raise WorkerError(f"Docker is not usable ({exc}); the worker runs every task in a container: start Docker "
                          "('tasknet up' on the devnet, or 'systemctl start docker') or set DOCKER_HOST") from exc
