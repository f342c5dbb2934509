"""examples/dapp/README.md, run as written: the ```sh block of its "Run it" section, command by command, as real
processes in a temporary clone (tests/e2e/test_readme.py's reader and runner: plain commands only, the daemons
in the background until the end), then the page it serves opened in Debian's chromium as the README says
("then open http://127.0.0.1:8000/"), with no wallet in the browser: the devnet's dev account.

What it proves, besides each command exiting 0: ``tasknet up --ipfs-api-origin http://127.0.0.1:8000`` opens the
devnet's kubo to that page (the page's uploads work from it, and are refused from http://localhost:8000, the same
files under another origin, with the page naming the option to use); ``setup.py`` deploys a working FileHasher and
writes the page's config; ``build.mjs`` bundles a page that runs; ``tasknet worker run --as worker-1`` hashes the
request, and the page shows the result verified against the digest on chain. ``tasknet down`` runs last, always.

The clone's ``examples/dapp`` is a copy (setup.py and build.mjs write config.json and dist/ beside themselves);
everything else links to this repository. The README's ports (8545, 8000) must be free: the test waits for them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from test_readme import Command, Runner, clean_up, listens_on, readme_blocks, wait_for_ports, workspace

REPO = Path(__file__).resolve().parents[2]
DAPP = REPO / "examples" / "dapp"
README = DAPP / "README.md"
SOURCE = "examples/dapp/README.md"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
TEXT = "hashed by the README's worker\n"

pytestmark = [pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing; install chromium")]


def commands() -> tuple[list[Command], list[Command]]:
    """The block's commands in README order, and its ``tasknet down`` (run last, always)."""
    blocks = readme_blocks(README.read_text(), sections=("Run it",), source=SOURCE)
    assert len(blocks) == 1 and blocks[0].commands, f"{SOURCE} has no ```sh block under '## Run it'"
    cmds = blocks[0].commands
    return [c for c in cmds if c.words[:1] != ("down",)], [c for c in cmds if c.words[:1] == ("down",)]


def test_the_dapp_readme_block_parses_into_the_commands_a_user_runs() -> None:
    run, downs = commands()
    assert [c.argv[:3] for c in run][:1] == [[".venv/bin/tasknet", "up", "--ipfs-api-origin"]]
    assert [c.words for c in downs] == [("down",)]
    daemons = [c for c in run if c.is_daemon]
    assert [c.words or tuple(c.argv[1:3]) for c in daemons] == [("worker", "run"), ("-m", "http.server")]
    assert listens_on(daemons[1]) == 8000
    origins = run[0].argv[run[0].argv.index("--ipfs-api-origin") + 1:]
    assert origins[:1] == [f"http://127.0.0.1:{listens_on(daemons[1])}"], "kubo must allow the page's origin"


def clone_with_own_dapp(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """test_readme's workspace, with ``examples/dapp`` copied (its generated files left out)."""
    cwd, env = workspace(tmp_path)
    (cwd / "examples").unlink()
    (cwd / "examples").mkdir()
    for entry in (REPO / "examples").iterdir():
        if entry.name != "dapp":
            (cwd / "examples" / entry.name).symlink_to(entry)
    shutil.copytree(DAPP, cwd / "examples" / "dapp", ignore=shutil.ignore_patterns("dist", "config.json"))
    return cwd, env


def test_every_dapp_readme_command_runs_as_written_and_the_page_gets_a_verified_result(
        tmp_path: Path, docker_client: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    run, downs = commands()
    wait_for_ports({p for c in run if (p := listens_on(c))})
    logs = tmp_path / "logs"
    logs.mkdir()
    t0 = time.monotonic()
    cwd, env = clone_with_own_dapp(tmp_path)
    runner = Runner(cwd, env, logs)
    home = Path(env["TASKNET_HOME"])
    devnet_file = home / "devnet" / "devnet.json"
    accounts: list[str] = []
    problems: list[str] = []
    try:
        for cmd in run:
            runner.run(cmd)
            if not accounts and devnet_file.exists():
                accounts = [a["address"] for a in json.loads(devnet_file.read_text())["accounts"]]
            runner.check_daemons()
        config = json.loads((cwd / "examples" / "dapp" / "config.json").read_text())
        assert (cwd / "examples" / "dapp" / "dist" / "app.js").is_file()
        assert not (DAPP / "config.json").exists() or (DAPP / "config.json").stat().st_mtime < t0, \
            "setup.py wrote into the repository, not the clone"
        port = listens_on(next(c for c in run if c.serves_files))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                errors: list[str] = []
                page = browser.new_page(viewport={"width": 1200, "height": 1100})
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{port}/")
                expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=20_000)
                expect(page.locator("#wallet-kind")).to_contain_text("devnet dev account 'requester'")
                expect(page.locator("#account")).to_have_text(config["devAccount"]["address"])
                page.fill("#text", TEXT)
                page.click("#request-btn")
                expect(page.locator('#requests tr[data-request-id="1"] td.badge')).to_have_text(
                    "done", timeout=180_000)
                expect(page.locator("#verified")).to_have_class("good", timeout=30_000)
                digest = hashlib.sha256(TEXT.encode()).hexdigest()
                expect(page.locator("#result-text")).to_contain_text(f"sha256: {digest}")
                runner.check_daemons()

                # the same page from an origin `tasknet up` did not name: kubo refuses its upload, the page says
                # which option would allow it, and nothing is paid
                other = browser.new_page()
                other.goto(f"http://localhost:{port}/")
                expect(other.locator("body[data-ready=true]")).to_have_count(1, timeout=20_000)
                other.fill("#text", "from another origin")
                other.click("#request-btn")
                expect(other.locator("#error")).to_contain_text(
                    f"tasknet up --ipfs-api-origin http://localhost:{port}", timeout=30_000)
                expect(other.locator("#requests tbody tr")).to_have_count(1)
                assert errors == []
            finally:
                browser.close()
    finally:
        problems = clean_up(runner, downs, home, accounts)
        print(f"{SOURCE} run in {time.monotonic() - t0:.0f} s", *problems, sep="\n\n")  # shown on a failure
    assert not problems, "\n\n".join(problems)
