"""The requester SDK (oracle.Client) against a real anvil, kubo, image registry and Docker engine."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import test_client_helpers as helpers
from test_client_helpers import E18, client, drive_worker, enroll, register_echo_app
from web3 import Web3

from oracle.client import JobSpec, TaskInput
from oracle.exceptions import (
    AccessDenied,
    InsufficientBalance,
    IntegrityError,
    InvalidJobSpec,
    ResultNotReady,
    TransactionReverted,
    UnknownApp,
    UnknownDataset,
    WaitTimeout,
)
from oracle.images import image_digest

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def _warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_deposit_permit_withdraw_and_balance(devnet_file: Path) -> None:
    with client(devnet_file) as c:
        c.account.faucet(10 * E18)
        c.account.deposit(3 * E18)  # approve + deposit
        c.account.deposit(2 * E18, permit=True)  # one transaction with an EIP-2612 signature
        b = c.account.balance()
        assert (b.wallet, b.deposited) == (5 * E18, 5 * E18)
        c.account.withdraw(E18)
        assert c.account.balance().deposited == 4 * E18
        nonce = c.w3.eth.get_transaction_count(c.address)
        with pytest.raises(InsufficientBalance, match="at most that"):
            c.account.withdraw(5 * E18)
        with pytest.raises(InsufficientBalance, match="faucet"):
            c.account.deposit(100 * E18)
        assert c.w3.eth.get_transaction_count(c.address) == nonce  # refused before sending anything


def test_connect_with_a_keystore_or_a_dev_key(devnet_file: Path, anvil: Any, accounts: list[Any],
                                             tmp_path: Path) -> None:
    from eth_account import Account

    from oracle import Client, DevnetInfo
    from oracle.exceptions import ClientError

    info = DevnetInfo.load(devnet_file)
    market = info.contracts["Marketplace"]
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(accounts[1].key, "pw")))
    with Client.connect(info.rpc_url, marketplace=market, ipfs_api=info.ipfs_api, keystore=keystore,
                        password="pw") as c:
        assert c.address == accounts[1].address and c.account.balance().deposited == 0
    with Client.connect(info.rpc_url, marketplace=market, ipfs_api=info.ipfs_api,
                        private_key="0x" + accounts[2].key.hex().removeprefix("0x")) as c:
        assert c.address == accounts[2].address
    with pytest.raises(ClientError, match="check the path and the password"):
        Client.connect(info.rpc_url, marketplace=market, ipfs_api=info.ipfs_api, keystore=keystore, password="no")
    with pytest.raises(ClientError, match="no contract at marketplace address"):
        Client.connect(info.rpc_url, marketplace=accounts[3].address, ipfs_api=info.ipfs_api, keystore=keystore,
                       password="pw")


def test_register_app_pushes_pins_and_restricts(devnet_file: Path, app_image: str, image_registry: str,
                                                docker_client: Any) -> None:
    requester = client(devnet_file)
    with client(devnet_file, "app-owner") as owner:
        app = owner.apps.register(app_image, name="echo", price=E18 // 10, public=False,
                                 requesters=[requester.address], deterministic_file="result.txt")
        assert app.image_ref.startswith(f"{image_registry}/") and "@sha256:" in app.image_ref
        assert app.image_digest == image_digest(docker_client, app_image)
        assert not app.public and app.deterministic_file == "result.txt"
        meta = owner.ipfs.cat_json(app.metadata_uri.removeprefix("ipfs://"))
        assert meta["name"] == "echo" and meta["image"] == app.image_ref
        assert [a.app_id for a in owner.apps.list(owner=owner.address)] == [app.app_id]
        assert owner.apps.update(app.app_id, price=E18).price == E18
        # a requester not on the list cannot post
        stranger = client(devnet_file, "dataset-owner", fund=2 * E18)
        with pytest.raises(AccessDenied, match="does not list requester"):
            stranger.jobs.submit(JobSpec(app_id=app.app_id, reward=E18 // 10))
        owner.apps.deprecate(app.app_id)
        assert owner.apps.get(app.app_id).deprecated
    with pytest.raises(UnknownApp, match="apps are numbered 1..1"):
        requester.apps.get(7)


def test_dataset_folder_is_packed_checksummed_and_access_checked(devnet_file: Path, app_image: str,
                                                                 tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    other_app = register_echo_app(devnet_file, app_image)
    folder = tmp_path / "ds"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    with client(devnet_file, "dataset-owner") as owner:
        ds = owner.datasets.add(folder, price=E18 // 100, any_app=False, apps=[app_id])
        again = owner.datasets.add(folder)  # canonical packing: same bytes, same CID
        content = owner.ipfs.cat(ds.cid)
    assert ds.kind == "folder" and ds.size == len(content)
    assert ds.checksum == hashlib.sha256(content).hexdigest() and again.cid == ds.cid
    with client(devnet_file, fund=5 * E18) as c:
        with pytest.raises(AccessDenied, match=f"does not admit app {other_app}"):
            c.jobs.submit(JobSpec(app_id=other_app, dataset_id=ds.dataset_id, reward=E18 // 10))
        with pytest.raises(UnknownDataset):
            c.jobs.submit(JobSpec(app_id=app_id, dataset_id=99, reward=E18 // 10))
        job = c.jobs.submit(JobSpec(app_id=app_id, dataset_id=ds.dataset_id, reward=E18 // 10))
        assert job.escrow == E18 // 10 + E18 // 100
        doc = c.ipfs.cat_json(job.inputs_cid)
        assert doc["common_inputs"] == [{"uri": f"ipfs://{ds.cid}", "path": "dataset"}]


def test_encrypted_bag_from_csv_is_watched_fetched_decrypted_and_verified(devnet_file: Path, app_image: str,
                                                                         tmp_path: Path, w3: Web3,
                                                                         accounts: list[Any]) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    (tmp_path / "x.txt").write_text("hello x")
    (tmp_path / "y.txt").write_text("hello y")
    args = tmp_path / "tasks.csv"
    args.write_text('args,in:data.txt,env:MODE\n"frame 0",x.txt,fast\n"frame 1",y.txt,slow\n"frame 2",x.txt,fast\n')
    c = client(devnet_file, fund=10 * E18)
    from oracle.client import load_tasks

    uploads: list[tuple[str, int]] = []
    job = c.jobs.submit(JobSpec(app_id=app_id, tasks=load_tasks(args), reward=E18 // 2, encrypt=True),
                       progress=lambda name, n: uploads.append((name, n)))
    assert sorted(uploads) == [("x.txt", 7), ("y.txt", 7)]  # each file uploaded once
    doc = c.ipfs.cat_json(job.inputs_cid)
    assert doc["tasks"][1]["args"] == ["frame", "1"] and doc["tasks"][1]["env"] == {"MODE": "slow"}
    keyring = Path(c.keyring.path)
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert job.encryption_key in json.loads(keyring.read_text())["keys"]

    with pytest.raises(WaitTimeout, match="job explain"):
        c.jobs.wait(job.job_id, timeout=0.3)
    with pytest.raises(ResultNotReady, match="is open"):
        c.results.download(job.job_id, tmp_path / "out", indexes=[0])
    worker = accounts[4]
    enroll(w3, c.market, worker)
    drive_worker(w3, c.market, c.ipfs, [worker], job.job_id, tmp_path)
    events = list(c.jobs.watch(job.job_id, timeout=10))
    names = [e.name for e in events]
    assert names[0] == "JobPosted" and names.count("TasksClaimed") == 3 and names.count("ResultSubmitted") == 3
    assert events[-1].progress.finalized == 3 and events[-1].progress.done
    assert c.jobs.get(job.job_id).closed  # the last result settled the job

    results = c.results.download(job.job_id, tmp_path / "out")
    assert [r.index for r in results] == [0, 1, 2] and all(r.verified for r in results)
    text = (tmp_path / "out" / "1" / "output" / "result.txt").read_text()
    assert text == "args: frame 1\nin: ./data.txt hello y\n"
    assert (tmp_path / "out" / "1" / "logs" / "stdout.txt").read_text() == "done 1\n"
    # without the private key the results are unreadable
    other = type(c.keyring)(tmp_path / "other-keyring.json")
    c.keyring = other
    with pytest.raises(Exception, match="no matching private key"):
        c.results.verify(job.job_id, [0])


@pytest.mark.reliability(kind="attack", name="worker lies or publishes content that does not match its digest",
                         how="R=3 with one lying worker: the majority result is returned; an R=1 result whose CID "
                             "does not hold the digested archive is refused by the requester SDK")
def test_replicated_job_takes_the_majority_and_detects_tampered_content(devnet_file: Path, app_image: str,
                                                                        tmp_path: Path, w3: Web3,
                                                                        accounts: list[Any]) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=20 * E18)
    job = c.jobs.submit(JobSpec(app_id=app_id, count=2, args=["n={index}"], replication=3, reward=E18 // 4))
    workers = accounts[4:7]
    for w in workers:
        enroll(w3, c.market, w)
    drive_worker(w3, c.market, c.ipfs, workers, job.job_id, tmp_path, liars=1)
    status = c.jobs.wait(job.job_id, timeout=10)
    assert status.progress.finalized == 2
    results = c.results.download(job.job_id, tmp_path / "out")
    assert (tmp_path / "out" / "1" / "output" / "result.txt").read_text() == "args: n=1\n"
    assert all(r.digest_source == "archive" for r in results)

    # R = 1 job whose worker reports a CID that does not hold the digested content
    bad = c.jobs.submit(JobSpec(app_id=app_id, reward=E18 // 4))
    tid = bad.job_id << 32
    fns = c.market.contract.functions
    from oracle import send

    send(w3, fns.claim(tid), workers[0], extra_abis=c.market.error_abis)
    wrong_cid = c.ipfs.add_bytes(b"not the archive")
    send(w3, fns.submit(tid, b"\x01" * 32, wrong_cid, b""), workers[0], extra_abis=c.market.error_abis)
    with pytest.raises(IntegrityError, match="does not match the digest"):
        c.results.download(bad.job_id, tmp_path / "bad")
    assert not (tmp_path / "bad" / "0").exists()


def test_bad_inputs_are_refused_before_spending(devnet_file: Path, app_image: str, tmp_path: Path) -> None:
    app_id = register_echo_app(devnet_file, app_image, price=E18)
    c = client(devnet_file, fund=2 * E18)
    from oracle.client import load_tasks

    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[["a"], {"args": ["b"], "inputz": {}}]')
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("args,colour\n1,red\n")
    nonce = c.w3.eth.get_transaction_count(c.address)
    before = c.account.balance()
    cases: list[tuple[type[Exception], str, Any]] = [
        (InvalidJobSpec, "does not exist", lambda: c.jobs.submit(JobSpec(
            app_id=app_id, reward=1, tasks=[TaskInput(inputs={"scene.pov": str(tmp_path / "missing.pov")})]))),
        (UnknownApp, "no app 42", lambda: c.jobs.submit(JobSpec(app_id=42, reward=1))),
        (InsufficientBalance, "deposit 8 more", lambda: c.jobs.submit(JobSpec(app_id=app_id, count=10, reward=0))),
        (InvalidJobSpec, "task 1: Extra inputs", lambda: load_tasks(bad_json)),
        (InvalidJobSpec, "unknown CSV columns", lambda: load_tasks(bad_csv)),
        (InvalidJobSpec, "deadline in 100 s is too short", lambda: c.jobs.submit(JobSpec(
            app_id=app_id, reward=1, deadline_in=100, max_run_seconds=60))),
        (InvalidJobSpec, "not a contract", lambda: c.jobs.submit(JobSpec(
            app_id=app_id, reward=1, callback=c.address))),
    ]
    for exc_type, message, call in cases:
        with pytest.raises(exc_type, match=message):
            call()
    assert c.w3.eth.get_transaction_count(c.address) == nonce
    assert c.account.balance() == before


def test_cancel_unclaimed_then_close_after_deadline_refunds(devnet_file: Path, app_image: str, w3: Web3,
                                                            accounts: list[Any]) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=10 * E18)
    job = c.jobs.submit(JobSpec(app_id=app_id, count=5, reward=E18, deadline_in=1000, max_run_seconds=100))
    enroll(w3, c.market, accounts[4])
    from oracle import send

    send(w3, c.market.contract.functions.claim((job.job_id << 32) | 2), accounts[4], extra_abis=c.market.error_abis)
    cancelled, refund = c.jobs.cancel(job.job_id)
    assert (cancelled, refund) == (4, 4 * E18)
    assert [t.state for t in c.jobs.tasks(job.job_id)] == ["cancelled", "cancelled", "claimed", "cancelled", "cancelled"]
    with pytest.raises(Exception, match="deadline is in"):
        c.jobs.close(job.job_id)
    _warp(w3, 1001)
    assert c.jobs.close(job.job_id) == E18
    assert c.account.balance().deposited == 10 * E18
    with pytest.raises(TransactionReverted) as err:  # a revert shows its decoded custom error
        c.sender.transact(c.market.contract.functions.cancelTasks(job.job_id, 0, 1))
    assert err.value.error_name == "MarketplaceJobClosed" and err.value.error_args == {"jobId": job.job_id}


def test_explain_names_what_blocks_a_task(devnet_file: Path, app_image: str, w3: Web3, accounts: list[Any]) -> None:
    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=10 * E18)
    job = c.jobs.submit(JobSpec(app_id=app_id, reward=E18, cores=4, memory_mb=4000, deadline_in=1000,
                               max_run_seconds=100))

    def codes() -> list[str]:
        return [r.code for r in c.jobs.explain(job.job_id).reasons if r.severity == "blocking"]

    assert codes() == ["no-workers"]
    enroll(w3, c.market, accounts[4], stake=0, cores=2, memory=2000)
    e = c.jobs.explain(job.job_id)
    assert [r.code for r in e.reasons if r.severity == "blocking"] == ["no-capable-worker"]
    assert "largest offers 2 cores" in e.summary
    enroll(w3, c.market, accounts[5], stake=0)
    assert codes() == ["not-enough-stake"]
    enroll(w3, c.market, accounts[6])
    e = c.jobs.explain(job.job_id)
    assert codes() == [] and e.workers_ready == 1 and "1 worker(s) could claim it" in e.summary
    assert any(r.code == "reward-unknowable" for r in e.reasons)
    _warp(w3, 700)  # 300 s left < 100 s max run + 300 s claim grace
    assert codes() == ["deadline-too-short"]
    _warp(w3, 400)
    assert codes() == ["deadline-passed"]


def test_a_credibility_job_from_the_sdk_and_explain_says_why_a_task_wants_more(
        devnet_file: Path, app_image: str, w3: Web3, accounts: list[Any]) -> None:
    from oracle import send
    from oracle.protocol import commitment

    app_id = register_echo_app(devnet_file, app_image)
    c = client(devnet_file, fund=10 * E18)
    with pytest.raises(ValueError, match="replica cap of at least 2"):
        JobSpec(app_id=app_id, reward=E18, confidence=0.99)
    job = c.jobs.submit(JobSpec(app_id=app_id, reward=E18, replication=4, confidence=0.99, assume_faulty=0.1,
                               spot_check=0.25, deadline_in=1000, max_run_seconds=100))
    assert job.escrow == 4 * E18  # the cap's escrow: what the task does not use comes back
    assert tuple(c.market.contract.functions.getCredibility(job.job_id).call()) == (990_000_000, 1000, 2500)
    enroll(w3, c.market, accounts[4])
    tid = job.job_id << 32
    errs = c.market.error_abis
    send(w3, c.market.contract.functions.claim(tid), accounts[4], extra_abis=errs)
    send(w3, c.market.contract.functions.commit(tid, commitment(tid, b"\x01" * 32, b"\x02" * 32,
                                                                accounts[4].address)), accounts[4], extra_abis=errs)
    e = c.jobs.explain(job.job_id, 0)
    wanted = [r for r in e.reasons if r.code == "replica-wanted"]
    assert wanted and "wants replica 2 of at most 4" in wanted[0].message
    assert "probability 0.9 if they agreed, below the job's 0.99" in wanted[0].message
