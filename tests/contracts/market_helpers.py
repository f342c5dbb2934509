"""Helpers for the marketplace contract tests: roles, funding, apps, jobs, time travel, revert assertions.

Everything runs against the session anvil of ``tests/conftest.py`` (each test inside an evm snapshot);
``tests/contracts/conftest.py`` builds the :class:`Env` fixture from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from oracle import send
from oracle.exceptions import TransactionReverted
from oracle.protocol import Eip712Domain

E18 = 10**18
FAR = 10**9  # deadline offset used when a test does not care about time (~30 years)


@dataclasses.dataclass
class Env:
    w3: Web3
    market: Contract
    registry: Contract
    token: Contract
    owner: LocalAccount
    requester: LocalAccount
    app_owner: LocalAccount
    dataset_owner: LocalAccount
    workers: list[LocalAccount]
    outsider: LocalAccount

    @property
    def domain(self) -> Eip712Domain:
        return Eip712Domain(chain_id=self.w3.eth.chain_id, verifying_contract=self.market.address)

    # --- chain helpers -------------------------------------------------------------------------------
    def tx(self, fn: Any, sender: LocalAccount) -> Any:
        return send(self.w3, fn, sender, extra_abis=[self.registry.abi, self.token.abi])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def warp(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def balance(self, who: LocalAccount | str) -> int:
        addr = who if isinstance(who, str) else who.address
        return int(self.market.functions.balanceOf(addr).call())

    def view(self, fn_name: str, *args: Any) -> Any:
        """Call a marketplace view; a struct result comes back as a dict keyed by field name."""
        result = getattr(self.market.functions, fn_name)(*args).call()
        outputs = next(i for i in self.market.abi if i.get("name") == fn_name and i["type"] == "function")["outputs"]
        if len(outputs) == 1 and outputs[0]["type"] == "tuple":
            return {c["name"]: v for c, v in zip(outputs[0]["components"], result, strict=True)}
        return result

    def worker(self, who: LocalAccount) -> dict[str, Any]:
        return dict(self.view("getWorker", who.address))

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self.view("getJob", job_id))

    def task(self, tid: int) -> dict[str, Any]:
        return dict(self.view("getTask", tid))

    def lease(self, start: int) -> dict[str, Any]:
        return dict(self.view("getLease", start))

    def commit_block(self, start: int) -> int:
        """The block of the last ``RangeCommitted`` of the credible lease ``start`` (0 when none): what its reveal and
        its check give back (the contract keeps only the seal of the root and that block)."""
        logs = self.market.events.RangeCommitted().get_logs(from_block=0, argument_filters={"startTaskId": start})
        return int(logs[-1]["blockNumber"]) if logs else 0

    def replica(self, tid: int, i: int) -> dict[str, Any]:
        return dict(self.view("getReplica", tid, i))

    def params(self) -> dict[str, Any]:
        return dict(self.view("params"))

    # --- setup helpers -------------------------------------------------------------------------------
    def fund(self, who: LocalAccount, amount: int) -> None:
        """Faucet + approve + deposit ``amount`` into ``who``'s marketplace balance."""
        self.tx(self.token.functions.faucet(who.address, amount), who)
        self.tx(self.token.functions.approve(self.market.address, amount), who)
        self.tx(self.market.functions.deposit(amount), who)

    def app(self, price: int = 0, public: bool = True, owner: LocalAccount | None = None) -> int:
        owner = owner or self.app_owner
        self.tx(self.registry.functions.registerApp("registry.local/app:1", b"\x11" * 32, "ipfs://meta", price,
                                                    public, ""), owner)
        return int(self.registry.functions.appCount().call())

    def dataset(self, price: int = 0, any_requester: bool = True, any_app: bool = True) -> int:
        self.tx(self.registry.functions.registerDataset("bafydataset", b"\x22" * 32, 1000, price, any_requester,
                                                        any_app), self.dataset_owner)
        return int(self.registry.functions.datasetCount().call())

    def enroll(self, who: LocalAccount, stake: int = 10 * E18, cores: int = 8, memory: int = 16_000, gpus: int = 0,
               arch: int = 1) -> None:
        """Register ``who`` as a worker and stake ``stake`` (funded from the faucet)."""
        self.tx(self.market.functions.registerWorker(cores, memory, gpus, arch), who)
        if stake:
            self.fund(who, stake)
            self.tx(self.market.functions.stake(stake), who)

    def job_params(self, app_id: int, **kw: Any) -> tuple[Any, ...]:
        p: dict[str, Any] = {
            "appId": app_id, "datasetId": 0, "numTasks": 1, "replication": 1, "reward": E18,
            "deadline": self.now() + FAR, "maxRunSeconds": 3600, "cores": 1, "memoryMB": 512, "gpus": 0,
            "archMask": 0, "minReputation": 0, "callback": "0x" + "00" * 20, "inputsCID": "bafyinputs",
            "encryptionKey": b"",
        }
        p.update(kw)
        return (p["appId"], p["datasetId"], p["numTasks"], p["replication"], p["reward"], p["deadline"],
                p["maxRunSeconds"], p["cores"], p["memoryMB"], p["gpus"], p["archMask"], p["minReputation"],
                p["callback"], p["inputsCID"], p["encryptionKey"])

    def post(self, app_id: int, requester: LocalAccount | None = None, **kw: Any) -> int:
        self.tx(self.market.functions.postJob(self.job_params(app_id, **kw)), requester or self.requester)
        return int(self.market.functions.jobCount().call())

    def post_credible(self, app_id: int, confidence_ppb: int, fault_bps: int, spot_bps: int = 0,
                      requester: LocalAccount | None = None, **kw: Any) -> int:
        """Post a job in credibility mode (``replication`` in ``kw`` is the replica cap)."""
        self.tx(self.market.functions.postCredibilityJob(self.job_params(app_id, **kw),
                                                         (confidence_ppb, fault_bps, spot_bps)),
                requester or self.requester)
        return int(self.market.functions.jobCount().call())

    def replicated_job(self, replication: int, num_tasks: int = 2) -> int:
        """A fixed-R job of a public app (0.1 token per replica, maxRunSeconds 100), a funded requester and every
        test worker enrolled."""
        app = self.app(price=E18 // 10)
        self.fund(self.requester, 100 * E18)
        for w in self.workers:
            self.enroll(w)
        return self.post(app, numTasks=num_tasks, replication=replication, maxRunSeconds=100)

    def events(self, receipt: Any, name: str, contract: Contract | None = None) -> list[dict[str, Any]]:
        """The decoded ``name`` events of ``receipt`` (emitted by the marketplace unless ``contract``)."""
        ev = getattr((contract or self.market).events, name)()
        return [dict(e["args"]) for e in ev.process_receipt(receipt, errors=DISCARD)]

    def escrow_total(self) -> int:
        return sum(int(self.market.functions.jobEscrow(j).call())
                   for j in range(1, int(self.market.functions.jobCount().call()) + 1))


def reverts(env: Env, fn: Any, sender: LocalAccount, name: str, args: dict[str, Any] | None = None) -> None:
    """Assert that sending ``fn`` from ``sender`` reverts with custom error ``name`` (and exactly ``args``)."""
    with pytest.raises(TransactionReverted) as err:
        env.tx(fn, sender)
    assert err.value.error_name == name, str(err.value)
    if args is not None:
        assert _norm(err.value.error_args) == _norm(args), str(err.value)


def _norm(args: dict[str, Any]) -> dict[str, Any]:
    """Addresses compared case-insensitively (eth_abi decodes them lowercase)."""
    return {k: v.lower() if isinstance(v, str) and len(v) == 42 and v.startswith("0x") else v
            for k, v in args.items()}
