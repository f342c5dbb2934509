"""Homogeneous redundancy run by real worker daemons (anvil, kubo, Docker): a mixed population of two platform
classes declared on this one machine (amd64-a, amd64-b) runs an R = 2 job asking for HR and a credibility-mode job
asking for it too. Every replica of a task comes from one class, no honest worker is slashed, every task finishes,
and the auditor's verifier passes both jobs."""

from __future__ import annotations

from collections import defaultdict

from web3.logs import DISCARD

from sqlalchemy import select

from indexer import Indexer, Verifier, _db, make_engine
from oracle.market import Market
from oracle.protocol import ARCH_HOMOGENEOUS, platform_class_name
from oracle.tx import TxSender
from tests.integration.test_worker import fund_worker, running, settings, wait_for
from tests.market_helpers import ETHER, fund, register_app
from worker._daemon import Worker


def post_hr(w3, market: Market, requester, ipfs, app_id: int, tasks: int, replication: int,
            credibility: tuple[int, int, int] | None = None) -> int:
    data_cid = ipfs.add_bytes(b"hello\n")
    doc = {"count": tasks, "template": {"args": ["task", "{index}"]},
           "common_inputs": [{"uri": f"ipfs://{data_cid}", "path": "data.txt"}]}
    params = (app_id, 0, tasks, replication, ETHER // 10, market.chain_time() + 3600, 30, 1, 0, 0, ARCH_HOMOGENEOUS,
              0, "0x" + "00" * 20, ipfs.add_json(doc), b"")
    fns = market.contract.functions
    fn = fns.postJob(params) if credibility is None else fns.postCredibilityJob(params, credibility)
    receipt = TxSender(w3, requester, extra_abis=market.error_abis).transact(fn)
    return int(market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)[0]["args"]["jobId"])


def test_mixed_classes_keep_each_tasks_replicas_on_one_class(anvil, w3, accounts, market, ipfs, docker_client,
                                                             echo_digest, tmp_path) -> None:
    app_id = register_app(w3, market, accounts[2], echo_digest)
    fund(w3, market, accounts[1], 20 * ETHER)
    population = dict(zip(accounts[4:8], ("amd64-a", "amd64-a", "amd64-b", "amd64-b"), strict=True))
    for a in population:
        fund_worker(w3, market, a)
    fixed = post_hr(w3, market, accounts[1], ipfs, app_id, tasks=6, replication=2)
    workers = [Worker(settings(anvil, ipfs, market, a, tmp_path / f"w{i}", platform_class=cls),
                      docker_client=docker_client) for i, (a, cls) in enumerate(population.items())]
    with running(*workers):
        # the credibility-mode job comes once the fixed one gave each worker a record: two agreeing replicas of
        # workers with none are not credible enough at 0.99, and a third would have to come from a class of two
        # workers that both hold one already (the task would wait for its commit window to close)
        wait_for(lambda: market.job_record(fixed).settled == 6, timeout=300, what="the fixed job settled")
        credible = post_hr(w3, market, accounts[1], ipfs, app_id, tasks=3, replication=4,
                           credibility=(990_000_000, 1000, 0))
        wait_for(lambda: market.job_record(credible).settled == 3, timeout=300, what="the credibility job settled")
    c = market.contract
    for a, cls in population.items():  # each daemon registered the class it was given
        assert platform_class_name(c.functions.platformClassOf(a.address).call()) == cls
    bound = {e["args"]["taskId"]: platform_class_name(e["args"]["platformClass"])
             for e in c.events.TaskPlatformClassBound().get_logs(from_block=0)}
    classes: dict[int, set[str]] = defaultdict(set)
    for e in c.events.ReplicaClaimed().get_logs(from_block=0):
        classes[e["args"]["taskId"]].add(population[next(a for a in population if a.address == e["args"]["worker"])])
    assert len(classes) == 9 and set(bound) == set(classes)
    assert set(bound.values()) == {"amd64-a", "amd64-b"}, bound  # both classes ran tasks: the mix was exercised
    for tid, seen in classes.items():
        assert seen == {bound[tid]}, f"task {tid:#x}: replicas from {seen}, bound to {bound[tid]}"
        assert platform_class_name(c.functions.taskPlatformClass(tid).call()) == bound[tid]
    for j in (fixed, credible):
        assert market.job_record(j).finished == market.job_record(j).num_tasks
        assert c.functions.jobEscrow(j).call() == 0
    for a in population:
        info = market.worker_record(a.address)
        assert info.slashes == 0 and info.locked == 0, (population[a], info)
    assert not c.events.WorkerSlashed().get_logs(from_block=0)
    # the indexer mirrors each worker's class and each task's binding
    engine = make_engine(str(tmp_path / "mirror.db"))
    Indexer(engine, w3, market.address).sync()
    with engine.connect() as conn:
        mirrored = {r["address"].lower(): r["platform_class"]
                    for r in conn.execute(select(_db.workers)).mappings()}
        tasks = {r["task_id"]: r["platform_class"] for r in conn.execute(select(_db.tasks)).mappings()}
    assert {a.address.lower(): cls for a, cls in population.items()}.items() <= mirrored.items()
    assert tasks == bound
    for j in (fixed, credible):
        report = Verifier(w3, market.address, ipfs).job(j)
        assert report.passed, [(r.id, ch.name, ch.detail) for r in report.tasks for ch in r.failed]
