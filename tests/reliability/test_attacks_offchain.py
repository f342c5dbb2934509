"""Reliability suite, attack half, off chain: a requester's hostile inputs documents against a real worker daemon
(real anvil, kubo and Docker). Each must end as a clean, published failure result while the worker keeps serving
other jobs; see RELIABILITY.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle.archive import unpack_result
from oracle.market import Market
from oracle.protocol import split_task_id, task_id
from oracle.tx import TxSender
from tests.market_helpers import ETHER, fund, post_job, register_app
from worker._daemon import Worker
from worker._settings import WorkerSettings

DOC_CAP = 16 << 20  # the worker's cap on an inputs document (worker/_pipeline.py)


def _settings(anvil: Any, ipfs: Any, market: Market, account: Any, state: Path) -> WorkerSettings:
    return WorkerSettings(rpc_url=anvil.rpc_url, ipfs_api=ipfs.api_url, marketplace=market.address,
                          private_key="0x" + account.key.hex().removeprefix("0x"), state_dir=state,
                          stake=5 * ETHER, poll_interval=0.1, claim_backoff_max=0.05, input_stall_s=3)


@contextlib.contextmanager
def _running(worker: Worker) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        await worker.async_run(stop[0])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        while not stop:
            time.sleep(0.05)
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
        loop.close()


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _post_with_doc(w3: Any, market: Market, requester: Any, app_id: int, inputs_cid: str, tasks: int = 1) -> int:
    params = (app_id, 0, tasks, 1, ETHER // 10, market.chain_time() + 3600, 30, 1, 0, 0, 0, 0, "0x" + "00" * 20,
              inputs_cid, b"")
    receipt = TxSender(w3, requester, extra_abis=market.error_abis).transact(market.contract.functions.postJob(params))
    return int(market.contract.events.JobPosted().process_receipt(receipt)[0]["args"]["jobId"])


def _status(ipfs: Any, market: Market, tid: int, tmp: Path) -> str:
    events = [*market.contract.events.ResultSubmitted().get_logs(from_block=0),
              *market.contract.events.FailureReported().get_logs(from_block=0)]
    cid = next(e["args"]["resultCID"] for e in events if e["args"]["taskId"] == tid)
    (tmp / f"{tid}.tar").write_bytes(ipfs.cat(cid))
    unpack_result(tmp / f"{tid}.tar", tmp / f"u{tid}")
    return (tmp / f"u{tid}" / "logs" / "status.txt").read_text()


@pytest.mark.reliability(
    kind="attack", name="inputs document huge, not JSON, or missing",
    how="two real worker daemons meet three jobs whose inputs document is over the worker's 16 MiB cap, is not "
        "JSON, or is a CID nobody has, then a good job: the two broken documents end as failure results naming the "
        "cause, confirmed by the second worker; the missing one is each worker's environment: each gives what it "
        "claimed of it back once (a fee per task, no slash) and avoids the job; the good job is served and no stake stays locked")
def test_hostile_inputs_documents_end_as_clean_failures(anvil: Any, w3: Any, accounts: Any, market: Market,
                                                         ipfs: Any, docker_client: Any, echo_digest: str,
                                                         tmp_path: Path, record_property: Any) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    pair = (accounts[4], accounts[5])
    for a in pair:
        fund(w3, market, a, 10 * ETHER)
    pad = "x" * (DOC_CAP + 1024)
    huge_cid = ipfs.add_bytes(json.dumps({"count": 2, "template": {"args": [pad]}}).encode(), name="doc.json")
    garbage_cid = ipfs.add_bytes(b"\x00\xffnot json at all" * 64, name="doc.json")
    missing_cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    jobs = {"huge": _post_with_doc(w3, market, accounts[1], app_id, huge_cid, tasks=2),
            "garbage": _post_with_doc(w3, market, accounts[1], app_id, garbage_cid, tasks=2)}
    missing = _post_with_doc(w3, market, accounts[1], app_id, missing_cid, tasks=2)
    good = post_job(w3, market, accounts[1], ipfs, app_id, tasks=2)
    workers = [Worker(_settings(anvil, ipfs, market, a, tmp_path / a.address), docker_client=docker_client)
               for a in pair]
    given_back = market.contract.events.ClaimAbandoned()
    with _running(workers[0]), _running(workers[1]):
        _wait_for(lambda: all(market.job_record(j).finished == 2 for j in [*jobs.values(), good]), "all jobs settled",
                  timeout=240)
        _wait_for(lambda: {e["args"]["worker"] for e in given_back.get_logs(from_block=0)
                           if e["args"]["taskId"] >> 32 == missing} == {a.address for a in pair},
                  "both workers to give the missing one back")
    statuses = {k: _status(ipfs, market, task_id(j, 1), tmp_path) for k, j in jobs.items()}
    assert f"larger than the cap of {DOC_CAP} bytes" in statuses["huge"], statuses["huge"]
    assert "not valid JSON" in statuses["garbage"], statuses["garbage"]
    assert "reason: ok" in _status(ipfs, market, task_id(good, 0), tmp_path)
    confirmed = {e["args"]["taskId"] >> 32 for e in market.contract.events.FailureConfirmed().get_logs(from_block=0)}
    assert confirmed == set(jobs.values())
    assert market.job_record(missing).finished == 0
    abandons = [e["args"] for e in given_back.get_logs(from_block=0) if e["args"]["taskId"] >> 32 == missing]
    for a in pair:
        # a worker may have claimed one task of the missing job or both in one range: each task it held is given
        # back once, for the 0.1-token fee per task, and never claimed again by that worker
        mine = [e for e in abandons if e["worker"] == a.address]
        held = [e["taskId"] + i for e in mine for i in range(e["tasks"])]
        assert len(held) == len(set(held)), f"{a.address} gave the same task back twice: {mine}"
        assert all(e["fee"] == e["tasks"] * (ETHER // 10) for e in mine), mine
        me = market.worker_record(a.address)
        assert (me.locked, me.slashes, me.stake) == (0, 0, 5 * ETHER - len(held) * (ETHER // 10))
    record_property("reliability", "failure results confirmed by the second worker: " + "; ".join(
        f"{k}: …{_error_line(s).split(': ', 2)[-1][:90]}" for k, s in statuses.items())
        + "; the unreachable document was given back once by each worker (0.1 token each, no slash), the good job "
          "was served and no stake stayed locked")


def _error_line(status: str) -> str:
    return next(line for line in status.splitlines() if line.startswith("error:"))


@pytest.mark.reliability(
    kind="attack", name="broken inputs document is not re-fetched endlessly",
    how="a real worker daemon meets a 2-task job whose inputs document is over the 16 MiB cap and one whose "
        "document CID nobody has; count the worker's IPFS reads of each: a document that failed must be read at "
        "most once per task (a missing CID costs the IPFS timeout, 60 s by default, per read on a real network)")
def test_a_broken_inputs_document_is_not_fetched_again_and_again(anvil: Any, w3: Any, accounts: Any,
                                                                  market: Market, ipfs: Any, docker_client: Any,
                                                                  echo_digest: str, tmp_path: Path,
                                                                  record_property: Any) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 10 * ETHER)
    fund(w3, market, accounts[5], 10 * ETHER)
    huge_cid = ipfs.add_bytes(json.dumps({"count": 2, "template": {"args": ["x" * (DOC_CAP + 1024)]}}).encode())
    missing_cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    jobs = [_post_with_doc(w3, market, accounts[1], app_id, cid, tasks=2) for cid in (huge_cid, missing_cid)]
    worker = Worker(_settings(anvil, ipfs, market, accounts[5], tmp_path / "w"), docker_client=docker_client)
    fetches: Counter[str] = Counter()
    real_cat = worker.pipeline.ipfs.cat

    def counting_cat(cid: str, **kw: Any) -> bytes:
        fetches[cid] += 1
        return real_cat(cid, **kw)

    worker.pipeline.ipfs.cat = counting_cat  # type: ignore[method-assign]  # observe only
    failed = market.contract.events.FailureReported
    given_back = market.contract.events.ClaimAbandoned

    def handled() -> bool:
        # alone, the worker can only report the over-cap document's tasks as failed (a second worker would have
        # to confirm them) and give the unreachable one's claim back (then it avoids that job for a while)
        reported = {e["args"]["taskId"] for e in failed().get_logs(from_block=0)}
        abandoned = {e["args"]["taskId"] for e in given_back().get_logs(from_block=0)}
        return reported >= {task_id(jobs[0], i) for i in range(2)} and any(
            split_task_id(t)[0] == jobs[1] for t in abandoned)

    with _running(worker):
        _wait_for(handled, "both over-cap tasks reported failed and the unreachable one given back")
        time.sleep(3)  # a few more polls: nothing must read the documents again
    record_property("reliability", f"for 2 tasks each, the worker read the over-cap document {fetches[huge_cid]} "
                                   f"time(s) and the missing one {fetches[missing_cid]} time(s)")
    assert fetches[huge_cid] <= 2 and fetches[missing_cid] <= 2, dict(fetches)
