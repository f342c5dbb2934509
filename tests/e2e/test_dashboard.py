"""The public dashboard in a real browser (Debian's chromium through Playwright): the hosts, tasks, apps and
datasets of a real run render with the right rows, charts are drawn, and the page follows new on-chain
events live while the indexer ingests them. A screenshot is saved for a human to look at."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_indexer_helpers import GOOD, Traffic, traffic

from indexer import Indexer, create_app, make_engine
from oracle import connect
from oracle.protocol import task_id
from tasknet._devnet import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/tasknet-dashboard.png")


@pytest.fixture
def live(w3, accounts, deployment, anvil, tmp_path: Path) -> Iterator[tuple[Traffic, str, dict[str, int]]]:
    """Real traffic, an indexer following the chain in a thread, and the API on a real uvicorn."""
    t = traffic(w3, accounts, deployment)
    ids = t.scenario()
    engine = make_engine(str(tmp_path / "dash.db"))
    ix = Indexer(engine, connect(anvil.rpc_url), t.market.address)
    stop = threading.Event()
    ingest = threading.Thread(target=ix.run, args=(stop.is_set,), kwargs={"idle_sleep": 0.1}, daemon=True)
    ingest.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield t, f"http://127.0.0.1:{port}", ids
    finally:
        server.should_exit = True
        stop.set()
        serving.join(10)
        ingest.join(10)


def test_dashboard_shows_the_run_and_refreshes_live(live) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium")
    from playwright.sync_api import expect, sync_playwright

    t, base, ids = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/?refresh=300")

            hosts = page.locator("#hosts tbody tr")
            expect(hosts).to_have_count(4, timeout=15_000)
            for w in t.workers[:4]:
                expect(page.locator(f'#hosts span[title="{w.address}"]')).to_have_count(1)
            busy = page.locator("#hosts tbody tr", has=page.locator(f'span[title="{t.workers[3].address}"]'))
            expect(busy.locator(".badge")).to_have_text("busy")
            expect(hosts.locator(".badge", has_text="idle")).to_have_count(3)
            expect(busy).to_contain_text("15.6 GB")

            tasks = page.locator("#tasks tbody tr")
            expect(tasks).to_have_count(5)
            expect(page.locator("#tasks .badge", has_text="finalized")).to_have_count(4)
            expect(page.locator("#tasks .badge", has_text="running")).to_have_count(1)
            expect(page.locator(f'#tasks span[title="{task_id(ids["triple"], 1)}"]')).to_have_text(
                f"{ids['triple']}/1")
            expect(page.locator("#apps tbody tr")).to_have_count(1)
            expect(page.locator("#apps tbody")).to_contain_text("registry.local/app:1")
            expect(page.locator("#datasets tbody")).to_contain_text("bafydataset")
            expect(page.locator("#jobs tbody tr")).to_have_count(3)
            expect(page.locator("#c-done")).to_have_text("4 / 0")
            expect(page.locator("#c-success")).to_have_text("100.0%")
            assert int(page.locator("#ch-tasks").get_attribute("data-points") or 0) > 0
            assert page.locator("#ch-gas circle").count() >= 1

            # New on-chain events: the running task gets its other replicas and finishes; a fifth host joins.
            tid = task_id(ids["triple"], 1)
            t.enroll(t.workers[4])
            for w in (t.workers[0], t.workers[4]):
                t.claim(tid, w)
            for w in (t.workers[3], t.workers[0], t.workers[4]):
                t.commit(tid, w, GOOD)
            for w in (t.workers[3], t.workers[0], t.workers[4]):
                t.reveal(tid, w, GOOD)
            expect(hosts).to_have_count(5, timeout=15_000)
            expect(page.locator("#tasks .badge", has_text="finalized")).to_have_count(5, timeout=15_000)
            expect(page.locator("#c-done")).to_have_text("5 / 0")
            expect(busy.locator(".badge")).to_have_text("idle")

            page.locator(f'#tasks tr[data-key="{tid}"]').click()
            expect(page.locator("#detail-body")).to_contain_text("TaskFinalized")

            # Credibility mode: hosts show their verified results (workers[0] won two replicated tasks), a job its
            # confidence and cap, a task why it wants another replica (one new worker is not credible enough).
            veteran = page.locator("#hosts tbody tr", has=page.locator(f'span[title="{t.workers[0].address}"]'))
            expect(veteran.locator("td").nth(7)).to_have_text("2")
            credible = t.post_credible(ids["app"], 990_000_000, 1000, 0, cap=3)
            wants = task_id(credible, 0)
            t.claim_commit(wants, t.workers[1], GOOD)
            expect(page.locator(f'#tasks tr[data-key="{wants}"] .badge.b-not-credible')).to_have_text(
                "not-credible", timeout=15_000)
            expect(page.locator(f'#jobs tr[data-key="{credible}"] .b-credibility')).to_have_text("0.99 ≤3")
            page.locator(f'#tasks tr[data-key="{wants}"]').click()
            expect(page.locator("#detail-body")).to_contain_text("wanted replica 2: not-credible (credibility 0.9")
            assert errors == []
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 20_000
