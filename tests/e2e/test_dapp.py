"""examples/dapp, the FileHasher page, in a real browser (Debian's chromium through Playwright) on the session's
devnet (anvil, the deployed marketplace, a kubo whose RPC API allows the page's origin) with the real worker
daemon. The page's wallet is an injected EIP-1193 provider backed by a devnet key (the ``requester``): the
browser asks, Python signs. The page requests a hash, follows it to a result that it fetches from the gateway and
checks against the on-chain digest; a cancelled request is refunded; a revert is shown decoded, never ``0x…``.
A screenshot is saved for a human (and the example's README) to look at.

The second test follows requests that end without a result to their refund, from the page: a task whose failure
reports never agree (two workers reporting different failures up to the replica cap: the marketplace's
``onTaskFailed``), a request past its deadline refunded by its user (the refund closes the job), and one whose job
someone else closed after the deadline (``onTasksEnded``, ``Expired``); anvil's clock is moved past the deadlines
(``evm_increaseTime``). The user's token balance comes back in full, and a request the Dapp's balance cannot pay is
refused with ``TasknetClientInsufficientBalance(…)``, by name and values."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import test_client_helpers as helpers
from test_client_helpers import E18, client, run_worker

from oracle import DevnetInfo, send
from oracle._chain import contract_at
from oracle.market import Market
from tasknet import _devnet

REPO = Path(__file__).resolve().parents[2]
DAPP = REPO / "examples" / "dapp"
NODE = shutil.which("node")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/tasknet-dapp.png")
TEXT = "hello, Tasknet\nfrom a browser\n"

devnet_file = helpers.devnet_file
image_registry = helpers.image_registry

pytestmark = [pytest.mark.skipif(NODE is None, reason="node is not installed"),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing; install chromium")]

# The injected wallet: every request goes to Python (window.__tasknetWallet), which answers for the dev account
# (accounts, chain id, eth_sendTransaction signed with its key) and forwards the rest to the chain as is.
PROVIDER = """
window.ethereum = {
  isTasknetTestWallet: true,
  async request({ method, params }) {
    const answer = await window.__tasknetWallet(method, params ?? []);
    if (answer.error) {
      const error = new Error(answer.error.message);
      error.code = answer.error.code;
      error.data = answer.error.data;
      throw error;
    }
    return answer.result;
  },
  on() {}, removeListener() {},
};
"""


class Wallet:
    """What the injected provider asks, answered for one devnet key."""

    def __init__(self, rpc_url: str, address: str, private_key: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.account = self.w3.eth.account.from_key(private_key)
        assert self.account.address == address
        self.sent: list[str] = []

    def __call__(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return {"result": [self.account.address]}
        if method == "eth_sendTransaction":
            return self.send(params[0])
        answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        return {k: answer[k] for k in ("result", "error") if k in answer}

    def send(self, p: dict[str, Any]) -> dict[str, Any]:
        assert p["from"].lower() == self.account.address.lower()
        tx: dict[str, Any] = {"from": self.account.address, "to": p.get("to"), "data": p.get("data", "0x"),
                              "value": p.get("value", "0x0")}
        if "gas" not in p:
            est = self.w3.provider.make_request("eth_estimateGas", [tx])  # type: ignore[arg-type]
            if "error" in est:
                return {"error": est["error"]}
            p["gas"] = est["result"]
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        signed = self.account.sign_transaction({
            "to": Web3.to_checksum_address(tx["to"]), "data": tx["data"], "value": int(tx["value"], 16),
            "gas": int(p["gas"], 16), "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending"),
            "chainId": self.w3.eth.chain_id, "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9})
        answer = self.w3.provider.make_request("eth_sendRawTransaction",  # type: ignore[arg-type]
                                               ["0x" + signed.raw_transaction.hex().removeprefix("0x")])
        if "result" in answer:
            self.sent.append(answer["result"])
        return {k: answer[k] for k in ("result", "error") if k in answer}


def _setup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dapp_setup", DAPP / "setup.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle() -> Path:
    """examples/dapp/dist/app.js, built with esbuild (and @tasknet/contracts first)."""
    subprocess.run([str(NODE), str(DAPP / "build.mjs")], cwd=REPO, check=True, capture_output=True, text=True)
    return DAPP / "dist" / "app.js"


@pytest.fixture
def site(tmp_path: Path, bundle: Path) -> Iterator[tuple[Path, str]]:
    """The page's files served by a plain static file server; yields (folder, origin)."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(DAPP / "index.html", root)
    shutil.copytree(bundle.parent, root / "dist")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dapp(devnet_file: Path, docker_client: Any, site: tuple[Path, str], tmp_path: Path
         ) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """A kubo (gateway, RPC API open to the page's origin) in the devnet file, FileHasher deployed, config.json
    written; yields (devnet file, page URL, config). The kubo is started as ``tasknet up --ipfs-api-origin ORIGIN``
    starts the devnet's (the CLI itself is run by tests/e2e/test_dapp_readme.py)."""
    root, origin = site
    opts = _devnet.UpOptions(ipfs_api_origins=[origin])
    info, api, gateway = _devnet.start_devnet_kubo(tmp_path / "dapp-kubo", opts)
    try:
        dev = DevnetInfo.load(devnet_file)
        dev.model_copy(update={"ipfs_api": api, "ipfs_gateway": gateway}).save(devnet_file)
        config = _setup_module().setup(devnet_file, out=root / "config.json")
        with client(devnet_file) as requester:
            requester.account.faucet(10 * E18)
        yield devnet_file, f"{origin}/index.html", config
    finally:
        _devnet.stop(info)


def _status(page: Any, request_id: int) -> Any:
    return page.locator(f'#requests tr[data-request-id="{request_id}"] td.badge')


def _row_button(page: Any, request_id: int, testid: str) -> Any:
    return page.locator(f'#requests tr[data-request-id="{request_id}"] [data-testid={testid}]')


def _tokens(wei: int) -> str:
    """An amount as the page prints it (viem's formatUnits: no trailing zeros)."""
    return format(Decimal(wei).scaleb(-18).normalize(), "f")


def _open_page(browser: Any, url: str, wallet: Wallet, errors: list[str]) -> Any:
    """A page with the injected wallet, loaded and connected."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1200, "height": 1100})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.expose_function("__tasknetWallet", wallet)
    page.add_init_script(PROVIDER)
    page.goto(url)
    expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=20_000)
    expect(page.locator("#wallet-kind")).to_have_text("injected wallet")
    return page


def _advance_chain_clock(w3: Web3, seconds: int) -> None:
    """Moves anvil's clock ``seconds`` ahead and mines a block there (the w3 fixture puts it back afterwards)."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_the_page_requests_a_hash_follows_it_and_verifies_the_result(dapp: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    devnet, url, config = dapp
    dev = config["devAccount"]
    wallet = Wallet(config["rpcUrl"], dev["address"], dev["privateKey"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            errors: list[str] = []
            page = _open_page(browser, url, wallet, errors)
            expect(page.locator("#account")).to_have_text(dev["address"])
            expect(page.locator("#balance")).to_contain_text("10 ", timeout=10_000)
            expect(page.locator("#price")).to_contain_text("0.2 ")

            # 1. No worker yet: a request stays pending; cancelling it makes it refundable, the refund comes back.
            page.fill("#text", "cancel me")
            page.click("#request-btn")
            expect(_status(page, 1)).to_have_text("pending", timeout=30_000)
            page.locator('#requests tr[data-request-id="1"] [data-testid=cancel]').click()
            expect(_status(page, 1)).to_have_text("refundable", timeout=30_000)
            page.locator('#requests tr[data-request-id="1"]').click()
            expect(page.locator('#timeline li[data-event="TasksEndedDelivered"]')).to_have_count(1)
            expect(page.locator('#timeline li[data-event="HashFailed"]')).to_contain_text("cancelled")
            page.locator('#requests tr[data-request-id="1"] [data-testid=refund]').click()
            expect(_status(page, 1)).to_have_text("refunded", timeout=30_000)
            expect(page.locator('#timeline li[data-event="RefundClaimed"]')).to_have_count(1)

            # 2. With a real worker: the request is done, its result fetched through the gateway and verified.
            with run_worker(devnet, "worker-1", tmp_path / "worker"):
                page.fill("#text", TEXT)
                page.click("#request-btn")
                expect(_status(page, 2)).to_have_text("done", timeout=180_000)
            expect(page.locator("#detail-title")).to_have_text("Request #2: done")
            expect(page.locator("#verified")).to_have_class("good", timeout=30_000)
            expect(page.locator("#verified")).to_contain_text("verified")
            digest = hashlib.sha256(TEXT.encode()).hexdigest()
            expect(page.locator("#result-text")).to_contain_text(f"sha256: {digest}")
            expect(page.locator("#result-text")).to_contain_text(f"bytes: {len(TEXT.encode())}")
            expect(page.locator("#result-text")).to_contain_text("lines: 2")
            for event in ("HashRequested", "TasksClaimed", "ResultSubmitted", "CallbackDelivered", "HashComputed"):
                expect(page.locator(f'#timeline li[data-event="{event}"]')).to_have_count(1)
            on_chain = page.locator("#onchain-digest").text_content() or ""
            with client(devnet) as c:
                hasher = contract_at(c.w3, "FileHasher", config["contracts"]["FileHasher"])
                assert "0x" + bytes(hasher.functions.getRequest(2).call()[5]).hex() == on_chain
            assert errors == []
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # 3. A revert is shown by name and values: the app is deprecated, the Dapp refuses to post.
            with client(devnet, "app-owner") as owner:
                owner.apps.deprecate(config["appId"])
            page.fill("#text", "too late")
            page.click("#request-btn")
            error = page.locator("#error")
            expect(error).to_be_visible(timeout=30_000)
            expect(error).to_contain_text(f"TasknetClientAppDeprecated(appId: {config['appId']})")
            assert not (error.text_content() or "").startswith("0x")
            expect(page.locator("#requests tbody tr")).to_have_count(2)

            # 4. A browser without a wallet uses the devnet's dev account named in config.json.
            bare = browser.new_page()
            bare.goto(url)
            expect(bare.locator("body[data-ready=true]")).to_have_count(1, timeout=20_000)
            expect(bare.locator("#wallet-kind")).to_contain_text("devnet dev account 'requester'")
            expect(bare.locator("#requests tbody tr")).to_have_count(2, timeout=10_000)
        finally:
            browser.close()
    assert wallet.sent, "the page sent nothing through the injected wallet"
    assert SCREENSHOT.stat().st_size > 20_000


def test_requests_that_end_without_a_result_are_shown_failed_and_refunded_from_the_page(
        dapp: Any, w3: Web3, market: Market) -> None:
    from playwright.sync_api import expect, sync_playwright

    devnet, url, config = dapp
    dev = config["devAccount"]
    info = DevnetInfo.load(devnet)
    wallet = Wallet(config["rpcUrl"], dev["address"], dev["privateKey"])
    hasher = contract_at(w3, "FileHasher", config["contracts"]["FileHasher"])
    token = market.token
    symbol = token.functions.symbol().call()
    start = token.functions.balanceOf(dev["address"]).call()
    price = hasher.functions.price().call()
    ttl = hasher.functions.settings().call()[4]
    extra = market.error_abis
    worker_a, worker_b = (w3.eth.account.from_key(info.account(r).private_key) for r in ("worker-2", "worker-3"))
    for w in (worker_a, worker_b):
        helpers.enroll(w3, market, w)
    cap = market.market_params().max_replicas

    def balance_is(wei: int) -> None:
        expect(page.locator("#balance")).to_have_text(f"{_tokens(wei)} {symbol}", timeout=15_000)

    def request(text: str, request_id: int) -> int:
        page.fill("#text", text)
        page.click("#request-btn")
        expect(_status(page, request_id)).to_have_text("pending", timeout=30_000)
        balance_is(start - price)
        return int(hasher.functions.getRequest(request_id).call()[2])  # its job id

    def refund(request_id: int, reason: str) -> None:
        """Claims the refund from the page; the timeline shows why the request failed and the refund."""
        _row_button(page, request_id, "refund").click()
        expect(_status(page, request_id)).to_have_text("refunded", timeout=30_000)
        page.locator(f'#requests tr[data-request-id="{request_id}"]').click()
        expect(page.locator("#detail-title")).to_have_text(f"Request #{request_id}: refunded")
        expect(page.locator('#timeline li[data-event="HashFailed"]')).to_contain_text(reason)
        expect(page.locator('#timeline li[data-event="RefundClaimed"]')).to_contain_text(
            f"{_tokens(price)} {symbol} refunded")
        balance_is(start)
        assert token.functions.balanceOf(dev["address"]).call() == start
        assert hasher.functions.getRequest(request_id).call()[1] == 4  # Refunded

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            errors: list[str] = []
            page = _open_page(browser, url, wallet, errors)
            balance_is(start)

            # 1. Two workers report different failures until the replica cap: the task fails (TaskFailed), the
            #    marketplace calls onTaskFailed, the Dapp marks the request refundable; the page sees it in the events.
            job = request("the workers disagree about my failure", 1)
            tid = job << 32
            for n in range(cap):
                w = (worker_a, worker_b)[n % 2]
                send(w3, market.contract.functions.claim(tid), w, extra_abis=extra)
                if n == 0:
                    # a claimed task cannot be cancelled: the marketplace's error, bubbled up through FileHasher
                    # (not in its ABI: decoded by @tasknet/contracts' error table), by name and value
                    expect(_row_button(page, 1, "cancel")).to_have_count(1)
                    _row_button(page, 1, "cancel").click()
                    expect(page.locator("#error")).to_have_text(f"MarketplaceTaskTaken(taskId: {tid})",
                                                                timeout=30_000)
                send(w3, market.contract.functions.reportFailure(tid, bytes([n + 1]) * 32, f"bafyfailure{n}"), w,
                     extra_abis=extra)
            expect(_status(page, 1)).to_have_text("refundable", timeout=30_000)
            page.locator('#requests tr[data-request-id="1"]').click()
            expect(page.locator('#timeline li[data-event="FailureReported"]')).to_have_count(cap)
            expect(page.locator('#timeline li[data-event="TaskFailed"]')).to_have_count(1)
            expect(page.locator('#timeline li[data-event="CallbackDelivered"]')).to_contain_text("accepted")
            expect(page.locator('#timeline li[data-event="HashFailed"]')).to_contain_text(
                "failure reports reached the cap")
            expect(_row_button(page, 1, "cancel")).to_have_count(0)
            refund(1, "failure reports reached the cap")

            # 2. Nobody takes the task before its deadline: the page shows the request expired and its user claims
            #    the refund, which closes the job (JobClosed, onTasksEnded with Expired) in the same transaction.
            request("nobody will hash this", 2)
            expect(_row_button(page, 2, "refund")).to_have_count(0)  # not before the deadline
            _advance_chain_clock(w3, ttl + 1)
            expect(_status(page, 2)).to_have_text("expired", timeout=15_000)
            expect(_row_button(page, 2, "cancel")).to_have_count(0)
            refund(2, "not done by the deadline")
            expect(page.locator('#timeline li[data-event="JobClosed"]')).to_contain_text("after its deadline")
            expect(page.locator('#timeline li[data-event="TasksEndedDelivered"]')).to_contain_text("accepted")

            # 3. Someone else (here a worker) closes an expired job: the Dapp hears it first, the page shows the
            #    request refundable from the events alone, then its user claims the refund.
            job = request("closed by a stranger", 3)
            _advance_chain_clock(w3, ttl + 1)
            send(w3, market.contract.functions.closeJob(job), worker_a, extra_abis=extra)
            expect(_status(page, 3)).to_have_text("refundable", timeout=15_000)
            page.locator('#requests tr[data-request-id="3"]').click()
            expect(page.locator('#timeline li[data-event="HashFailed"]')).to_contain_text("not done by the deadline")
            refund(3, "not done by the deadline")

            # 4. The owner prices requests below their escrow and sponsors nothing: the Dapp's balance cannot pay
            #    the next request, and the page names the error and its values.
            cheap = price // 4
            needed = hasher.functions.quote().call()
            available = hasher.functions.spendable().call() + cheap
            assert available < needed
            owner = w3.eth.account.from_key(info.account("deployer").private_key)
            send(w3, hasher.functions.setSettings(hasher.functions.settings().call(), cheap), owner)
            expect(page.locator("#price")).to_have_text(f"{_tokens(cheap)} {symbol}", timeout=15_000)
            page.fill("#text", "the Dapp cannot pay for this")
            page.click("#request-btn")
            error = page.locator("#error")
            expect(error).to_be_visible(timeout=30_000)
            expect(error).to_have_text(f"TasknetClientInsufficientBalance(available: {available}, needed: {needed})")
            expect(page.locator("#requests tbody tr")).to_have_count(3)
            balance_is(start)
            assert errors == []
        finally:
            browser.close()
