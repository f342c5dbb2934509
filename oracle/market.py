"""Typed access to a deployed marketplace: the contracts, their event ABIs, and decoded views."""

from __future__ import annotations

import time
from enum import IntEnum, IntFlag
from functools import cached_property
from typing import Any, NamedTuple

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint

from ._artifacts import AbiList, abi
from ._chain import _canonical_type, latest_head
from .protocol import ARCH_HOMOGENEOUS, JobId, split_task_id


class ChainClock:
    """The chain's clock, told apart from this machine's.

    Protocol deadlines are block timestamps, and a chain's clock need not be the wall clock: a sequencer's may be
    skewed, and a test chain's runs behind after a snapshot is reverted or ahead after its time is increased. The
    offset (chain minus wall) is the median of ``timestamp - time first seen`` over the last ``window`` blocks seen
    appear after the first one (the block found at start may have been made long ago); it starts at 0, the usual
    case. Seeing a block late only lowers a sample, so the estimate errs by at most the poll interval, early.
    """

    def __init__(self, window: int = 16) -> None:
        self.window = window
        self.offset = 0.0
        self._samples: list[float] = []
        self._last: int | None = None

    def observe(self, number: int, timestamp: int, wall: float | None = None) -> int:
        """Record the latest block ``number`` stamped ``timestamp``; return the estimated chain time."""
        wall = time.time() if wall is None else wall
        if self._last is not None and number < self._last:
            self._samples.clear()  # a reorg or a reverted snapshot: the past samples may be of another clock
        elif self._last is not None and number > self._last:
            self._samples = (self._samples + [timestamp - wall])[-self.window:]
            ordered = sorted(self._samples)
            self.offset = ordered[len(ordered) // 2]
        self._last = number
        return max(timestamp, int(wall + self.offset))

    def now(self, wall: float | None = None) -> float:
        """The chain's time estimated without asking it (for when the chain may be the dependency that is down)."""
        return (time.time() if wall is None else wall) + self.offset


class JobView(BaseModel):
    """A job as workers and requesters need it: the posted parameters plus where it stands."""

    job_id: JobId
    requester: str
    app_id: int
    dataset_id: int
    num_tasks: int
    replication: int
    reward: int
    deadline: int
    max_run_seconds: int
    cores: int
    memory_mb: int
    gpus: int
    arch_mask: int
    min_reputation: int
    callback: str
    inputs_cid: str
    encryption_key: str  # hex, "" when results are not encrypted
    escrow: int = 0
    closed: bool = False
    confidence_ppb: int = 0  # credibility mode (JobCredibility): then `replication` is the replica cap

    @property
    def homogeneous(self) -> bool:
        """Whether the job asks for homogeneous redundancy (bit 7 of its archMask): a task's replicas all come
        from the platform class of its first."""
        return bool(self.arch_mask & ARCH_HOMOGENEOUS)

    @classmethod
    def from_event(cls, args: dict[str, Any]) -> JobView:
        p = args["params"]
        if isinstance(p, list | tuple):  # positional tuple (JobParams field order)
            keys = ["appId", "datasetId", "numTasks", "replication", "reward", "deadline", "maxRunSeconds", "cores",
                    "memoryMB", "gpus", "archMask", "minReputation", "callback", "inputsCID", "encryptionKey"]
            p = dict(zip(keys, p, strict=True))
        key = p["encryptionKey"]
        key_hex = key.removeprefix("0x") if isinstance(key, str) else bytes(key).hex()
        return cls(
            job_id=args["jobId"], requester=args["requester"], app_id=p["appId"], dataset_id=p["datasetId"],
            num_tasks=p["numTasks"], replication=p["replication"], reward=p["reward"], deadline=p["deadline"],
            max_run_seconds=p["maxRunSeconds"], cores=p["cores"], memory_mb=p["memoryMB"], gpus=p["gpus"],
            arch_mask=p["archMask"], min_reputation=p["minReputation"], callback=p["callback"],
            inputs_cid=p["inputsCID"], encryption_key=key_hex, escrow=args.get("escrow", 0),
        )


class AppView(BaseModel):
    app_id: int
    owner: str
    image_ref: str
    image_digest: str  # "sha256:<hex>"
    metadata_uri: str
    price: int
    is_public: bool
    deterministic_file: str
    deprecated: bool = False

    @classmethod
    def from_event(cls, args: dict[str, Any]) -> AppView:
        digest = args["imageDigest"]
        digest_hex = digest.removeprefix("0x") if isinstance(digest, str) else bytes(digest).hex()
        return cls(app_id=args["appId"], owner=args["owner"], image_ref=args["imageRef"],
                   image_digest="sha256:" + digest_hex, metadata_uri=args["metadataURI"], price=args["price"],
                   is_public=args["isPublic"], deterministic_file=args["deterministicFile"])


# --- what the chain's views return, typed -------------------------------------------------------------
class TaskStatus(IntEnum):
    """``IMarketplace.TaskStatus``: where a task of a replicated job (R > 1) stands."""

    NONE = 0  # never claimed (or R = 1: see isTaken)
    ACTIVE = 1
    FINALIZED = 2
    FAILED = 3


class JobFlag(IntFlag):
    """Bits of a stored job's ``flags``."""

    CLOSED = 1
    HAS_CALLBACK = 2


class WorkerFlag(IntFlag):
    """Bits of a worker record's ``flags``."""

    REGISTERED = 1
    BANNED = 2


class _ChainStruct(BaseModel):
    """A struct one of the marketplace's views returns, validated from its ABI-named fields (camelCase) into
    snake_case attributes; frozen (a fresh read is a fresh object)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class JobRecord(_ChainStruct):
    """``getJob``: a job as the contract stores it (what claims and settlement need; the rest is in
    :class:`JobView`, from its ``JobPosted`` event)."""

    requester: str
    deadline: int
    max_run_seconds: int
    replication: int
    cores: int
    gpus: int
    num_tasks: int
    settled: int
    finished: int
    app_id: int
    dataset_id: int
    min_reputation: int
    memory_mb: int = Field(alias="memoryMB")
    fee_bps: int
    flags: JobFlag
    arch_mask: int
    reward: int
    replica_stake: int
    owners_price: int

    @property
    def closed(self) -> bool:
        return JobFlag.CLOSED in self.flags


class TaskView(_ChainStruct):
    """``getTask``: the consensus state of a task of a replicated job (R > 1). ``occupied``, ``committed`` and
    ``revealed`` have bit i set when replica slot i is claimed / committed / revealed."""

    status: TaskStatus
    target: int
    occupied: int
    committed: int
    revealed: int
    commit_deadline: int
    reveal_deadline: int
    commit_block: int


class ReplicaView(_ChainStruct):
    """``getReplica``: one replica slot of a task (R > 1); ``hash`` is the commitment, the result digest once
    revealed."""

    worker: str
    expiry: int
    hash: bytes


class LeaseView(_ChainStruct):
    """``getLease``: a lease on ``count`` tasks from its first task id (R = 1); ``done`` of them have results."""

    worker: str
    expiry: int
    count: int
    done: int


class WorkerRecord(_ChainStruct):
    """``getWorker``: a worker's stake, standing and advertised capabilities."""

    stake: int
    locked: int
    reputation: int
    slashes: int
    flags: WorkerFlag
    unstaking: int
    unstake_at: int
    cores: int
    memory_mb: int = Field(alias="memoryMB")
    gpus: int
    arch_mask: int
    verified: int

    @property
    def registered(self) -> bool:
        return WorkerFlag.REGISTERED in self.flags

    @property
    def banned(self) -> bool:
        return WorkerFlag.BANNED in self.flags


class MarketParams(_ChainStruct):
    """``params``: the protocol parameters the marketplace owner sets."""

    min_stake: int
    claim_grace: int
    commit_window: int
    reveal_window: int
    unstake_delay: int
    callback_gas: int
    replica_stake: int
    fee_bps: int
    max_replicas: int
    max_slashes: int
    abandon_bps: int


class Market:
    """The marketplace at ``address`` and its registry and token, as web3 contracts."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=abi("Marketplace"))
        self.clock = ChainClock()

    @cached_property
    def registry(self) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(self.contract.functions.registry().call()),
                                    abi=abi("MarketplaceRegistry"))

    @cached_property
    def token(self) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(self.contract.functions.token().call()),
                                    abi=abi("TestToken"))

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @property
    def event_abis(self) -> list[AbiList]:
        """Every event either contract emits (the linked libraries and the extension emit through the marketplace)."""
        return [abi("IMarketplace"), abi("IMarketplaceExtension"), abi("IMarketplaceRegistry")]

    @property
    def error_abis(self) -> list[AbiList]:
        return [abi("IMarketplace"), abi("IMarketplaceExtension"), abi("IMarketplaceRegistry"), abi("TestToken")]

    @property
    def addresses(self) -> list[str]:
        return [self.address, self.registry.address]

    # -- typed reads ------------------------------------------------------------------------------
    def job_record(self, job_id: int) -> JobRecord:
        return JobRecord.model_validate(_struct(self.contract, "getJob", job_id))

    def task_view(self, tid: int) -> TaskView:
        return TaskView.model_validate(_struct(self.contract, "getTask", tid))

    def replica_view(self, tid: int, index: int) -> ReplicaView:
        return ReplicaView.model_validate(_struct(self.contract, "getReplica", tid, index))

    def lease_view(self, start_tid: int) -> LeaseView:
        return LeaseView.model_validate(_struct(self.contract, "getLease", start_tid))

    def worker_record(self, address: str) -> WorkerRecord:
        return WorkerRecord.model_validate(_struct(self.contract, "getWorker", Web3.to_checksum_address(address)))

    def market_params(self) -> MarketParams:
        return MarketParams.model_validate(_struct(self.contract, "params"))

    def chain_time(self) -> int:
        """The timestamp the next block will carry, as well as it can be known (see :class:`ChainClock`): the
        latest block's, or the chain's clock estimated from the blocks seen appear when that is later (an idle
        automine chain makes no block, so its latest timestamp stands still while its clock runs on).
        Deadlines and expiries are measured by it."""
        block = latest_head(self.w3)
        return self.clock.observe(block.number, block.timestamp)

    def is_taken(self, tid: int) -> bool:
        return bool(self.contract.functions.isTaken(tid).call())

    def balance(self, address: str) -> int:
        return int(self.contract.functions.balanceOf(Web3.to_checksum_address(address)).call())

    @staticmethod
    def job_of(tid: int) -> JobId:
        return split_task_id(tid)[0]


class _ViewPlan(NamedTuple):
    """How to call one view without web3's per-call ABI search and formatters: its selector, argument types,
    result types (a struct's fields, or the outputs) and names, which of those are addresses, and whether the
    result is one struct."""

    selector: bytes
    inputs: list[str]
    outputs: list[str]
    names: list[str]
    addresses: list[int]
    struct: bool


_PLANS: dict[tuple[str, str], _ViewPlan | None] = {}


def _plan(contract: Contract, fn: str) -> _ViewPlan | None:
    """The lean plan of view ``fn`` (None for results with arrays or nested structs: web3 decodes those)."""
    key = (str(contract.address), fn)
    if key not in _PLANS:
        entries: AbiList = contract.abi
        item = next(i for i in entries if i.get("type") == "function" and i["name"] == fn)
        outputs = item["outputs"]
        struct = len(outputs) == 1 and outputs[0]["type"] == "tuple"
        fields = list(outputs[0]["components"]) if struct else list(outputs)
        inputs = [_canonical_type(i) for i in item["inputs"]]
        types = [str(f["type"]) for f in fields]
        simple = all("[" not in t and not t.startswith("tuple") for t in types + inputs)
        _PLANS[key] = _ViewPlan(
            function_signature_to_4byte_selector(f"{fn}({','.join(inputs)})"), inputs, types,
            [str(f["name"]) for f in fields], [n for n, t in enumerate(types) if t == "address"], struct,
        ) if simple else None
    return _PLANS[key]


def _struct(contract: Contract, fn: str, *args: Any) -> dict[str, Any]:
    """Call a view returning one struct (or plain outputs) and name its fields from the ABI.

    The call goes to the node as a raw ``eth_call``, encoded and decoded with the view's precompiled plan: web3's
    own path searches the contract's whole ABI and runs its formatters on every call, a sixth of the worker
    daemon's CPU (py-spy). Results are as web3 gives them (addresses checksummed). Whatever the raw path cannot
    take (an error answer, an empty result, an unusual type) goes through web3, which raises its usual errors."""
    plan = _plan(contract, fn)
    if plan is not None:
        data = plan.selector + abi_encode(plan.inputs, list(args))
        answer = contract.w3.provider.make_request(RPCEndpoint("eth_call"), [
            {"to": contract.address, "data": "0x" + data.hex()}, "latest"])
        raw = answer.get("result") if "error" not in answer else None
        if isinstance(raw, str) and len(raw) > 2:
            decoded = list(abi_decode(["(" + ",".join(plan.outputs) + ")"] if plan.struct else plan.outputs,
                                      bytes.fromhex(raw.removeprefix("0x"))))
            values = list(decoded[0]) if plan.struct else decoded
            for n in plan.addresses:
                values[n] = Web3.to_checksum_address(values[n])
            return dict(zip(plan.names, values, strict=True))
    return _web3_struct(contract, fn, *args)


def _web3_struct(contract: Contract, fn: str, *args: Any) -> dict[str, Any]:
    """:func:`_struct` through web3's contract call."""
    value = getattr(contract.functions, fn)(*args).call()
    entries: AbiList = contract.abi
    outputs = next(i for i in entries if i.get("type") == "function" and i["name"] == fn)["outputs"]
    if len(outputs) == 1 and outputs[0]["type"] == "tuple":
        names = [c["name"] for c in outputs[0]["components"]]
        return dict(zip(names, value, strict=True))
    return dict(zip([o["name"] for o in outputs], value if isinstance(value, list | tuple) else [value], strict=True))
