"""A 2 GiB dataset, for real: the owner's node holds it, a worker whose caps allow it fetches it (a stall limit,
not a whole-download limit), checks it against the on-chain sha256 and runs the app on it; a worker whose caps do
not allow it never claims the job. Real anvil, kubo and Docker engine; ~6 GiB of disk for the test's duration."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from oracle.archive import unpack_result
from oracle.images import build_app_image, build_busybox_base, image_digest
from oracle.market import Market
from oracle.protocol import task_id
from oracle.tx import TxSender
from tests.integration.test_worker import running, settings, wait_for
from tests.market_helpers import ETHER, fund, post_job
from worker._daemon import Worker

pytestmark = pytest.mark.integration

SIZE = 2 << 30
APP = """#!/bin/sh
# reads the whole dataset: its size and sha256 are the result
set -eu
wc -c < /in/dataset > /out/result.txt
sha256sum /in/dataset | cut -d' ' -f1 >> /out/result.txt
"""


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def test_a_two_gib_dataset_runs_where_the_caps_allow_it_and_is_never_claimed_elsewhere(
        anvil, w3, accounts, market: Market, ipfs, docker_client, tmp_path: Path) -> None:
    build_busybox_base(docker_client)
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "app.sh").write_text(APP)
    (ctx / "app.sh").chmod(0o755)
    (ctx / "Dockerfile").write_text('FROM tasknet/base-busybox\nCOPY app.sh /app.sh\nENTRYPOINT ["/app.sh"]\n')
    build_app_image(docker_client, ctx, "tasknet-test/dataset-reader:1")
    digest = image_digest(docker_client, "tasknet-test/dataset-reader:1")
    owner = TxSender(w3, accounts[2], extra_abis=market.error_abis)
    receipt = owner.transact(market.registry.functions.registerApp(
        "tasknet-test/dataset-reader:1", bytes.fromhex(digest.removeprefix("sha256:")), "ipfs://none", 0, True, ""))
    app_id = int(market.registry.events.AppRegistered().process_receipt(receipt)[0]["args"]["appId"])

    data = tmp_path / "dataset.bin"
    checksum = _write_random(data, SIZE)
    cid = ipfs.add_file(data)
    data.unlink()  # from here on, the dataset lives only in the owner's node
    receipt = owner.transact(market.registry.functions.registerDataset(
        cid, bytes.fromhex(checksum), SIZE, 0, True, True))
    dataset_id = int(market.registry.events.DatasetRegistered().process_receipt(receipt)[0]["args"]["datasetId"])

    fund(w3, market, accounts[1], 10 * ETHER)
    for a in (accounts[4], accounts[5]):
        fund(w3, market, a, 10 * ETHER)
    job_id = post_job(w3, market, accounts[1], ipfs, app_id, tasks=1, dataset_id=dataset_id, max_run=600)
    small = Worker(settings(anvil, ipfs, market, accounts[4], tmp_path / "small"), docker_client=docker_client)
    large = Worker(settings(anvil, ipfs, market, accounts[5], tmp_path / "large", max_input_mb=3072,
                            input_stall_s=60.0), docker_client=docker_client)
    assert small.s.max_input_mb == 1024  # the default cap: 2 GiB is over it
    with running(small, large):
        wait_for(lambda: market.job_record(job_id).finished == 1, timeout=540, what="the 2 GiB task finished")

    claims = market.contract.events.TasksClaimed().get_logs(from_block=0)
    assert {e["args"]["worker"] for e in claims} == {accounts[5].address}  # the small worker never claimed it
    sub = market.contract.events.ResultSubmitted().get_logs(from_block=0)
    result = {e["args"]["taskId"]: e["args"]["resultCID"] for e in sub}[task_id(job_id, 0)]
    archive = tmp_path / "r.tar"
    archive.write_bytes(ipfs.cat(result))
    unpack_result(archive, tmp_path / "r")
    size, sha = (tmp_path / "r" / "output" / "result.txt").read_text().split()
    assert (int(size), sha) == (SIZE, checksum)  # the app read every byte, and the very bytes the owner registered
    for a in (accounts[4], accounts[5]):
        info = market.worker_record(a.address)
        assert info.locked == 0 and info.slashes == 0
