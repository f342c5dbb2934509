"""Runs the reliability suite and writes RELIABILITY.md (see ``scripts/reliability``).

Every test marked ``@pytest.mark.reliability(kind=..., name=..., how=...)`` anywhere under tests/ is run with
``pytest -m reliability tests/ --reliability-report JSON`` (tests/conftest.py appends one JSON line per marked test:
kind, name, how, outcome, evidence); a JUnit XML file tells expected failures (known bugs, ``xfail``) from skips.
The report has a summary line, one table per kind (fault, attack, limit, load) and a static section on what a
colluding majority can do.

    scripts/reliability [PYTEST ARGS...]          run and write RELIABILITY.md (exit 1 if any test failed)
    scripts/reliability --out FILE [ARGS...]      write FILE instead
    scripts/reliability --from-json J [--junit X] render an existing result file, run nothing
    scripts/reliability --keep-results DIR ...    also keep the run's results.jsonl and junit.xml in DIR

Exit status: pytest's when it ran tests (0 all held, 1 something failed); 5 when no reliability test was
collected (RELIABILITY.md is then left as it was); pytest's status for usage errors and interruptions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from math import comb
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIND_ORDER = ["fault", "attack", "limit", "load"]
KIND_TITLES = {
    "fault": "Faults injected",
    "attack": "Attacks tried",
    "limit": "Documented limits (what the protocol does not prevent, shown to behave as described)",
    "load": "Load",
}
KIND_INTROS = {
    "fault": "A component is broken on purpose while work is in flight; ✓ means the system survived it as "
             "described (no money lost, work resumed or refunded).",
    "attack": "An adversarial worker, requester, app, token or relayer tries something; ✓ means it was rejected "
              "or slashed exactly as contracts/PROTOCOL.md says, and nobody else's work was affected.",
    "limit": "Not attacks the protocol blocks, but what it deliberately allows; ✓ means the behaviour is exactly "
             "the documented one (see the last section).",
    "load": "The system under sustained load; ✓ means it held.",
}


#: Attack rows are grouped by where the attack comes from: (test file, test function prefix or "") -> group.
ATTACK_GROUPS: list[tuple[str, str, str]] = [
    ("tests/contracts/test_consensus.py", "", "Adversarial workers"),
    ("tests/contracts/test_single_replica.py", "", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_copied_commitment", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_reveal_with_wrong", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_one_worker_cannot", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_colluding", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_commit_after", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_a_signed_message", "Adversarial workers"),
    ("tests/reliability/test_attacks_contracts.py", "test_a_banned_worker", "Adversarial workers"),
    ("tests/contracts/test_callbacks.py", "", "Adversarial requesters, callbacks and tokens"),
    ("tests/contracts/test_money.py", "", "Adversarial requesters, callbacks and tokens"),
    ("tests/reliability/test_attacks_contracts.py", "test_escrow", "Adversarial requesters, callbacks and tokens"),
    ("tests/reliability/test_attacks_contracts.py", "test_cancel", "Adversarial requesters, callbacks and tokens"),
    ("tests/reliability/test_attacks_contracts.py", "test_a_token", "Adversarial requesters, callbacks and tokens"),
    ("tests/reliability/test_attacks_offchain.py", "", "Hostile apps and inputs (worker daemon, sandbox, SDK)"),
    ("tests/integration/", "", "Hostile apps and inputs (worker daemon, sandbox, SDK)"),
    ("tests/unit/test_oracle_archive.py", "", "Hostile apps and inputs (worker daemon, sandbox, SDK)"),
    ("tests/reliability/test_attacks_contracts.py", "", "Contract safety: reentrancy, replay, uint edges, gas, loops"),
    ("tests/contracts/test_stateful.py", "", "Contract safety: reentrancy, replay, uint edges, gas, loops"),
]


def attack_group(nodeid: str) -> str:
    path, _, rest = nodeid.partition("::")
    for prefix, func, group in ATTACK_GROUPS:
        if path.startswith(prefix) and rest.startswith(func):
            return group
    return "Other attacks"


@dataclass
class Row:
    nodeid: str
    kind: str
    name: str
    how: str
    outcome: str  # passed | failed | xfailed | skipped
    details: str
    reason: str
    seconds: float


# --- running -----------------------------------------------------------------------------------------------------
def run_pytest(extra: list[str], json_path: Path, junit_path: Path) -> tuple[int, list[str]]:
    cmd = [sys.executable, "-m", "pytest", "-m", "reliability", "tests/", "--reliability-report", str(json_path),
           f"--junitxml={junit_path}", *extra]
    print("reliability: " + " ".join(shlex.quote(c) for c in cmd[1:]), file=sys.stderr, flush=True)
    return subprocess.call(cmd, cwd=ROOT), cmd


# --- reading -------------------------------------------------------------------------------------------------------
def _junit_key(nodeid: str) -> tuple[str, str]:
    parts = nodeid.split("::")
    path = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([path, *parts[1:-1]]), parts[-1]


def read_junit(path: Path | None) -> dict[tuple[str, str], tuple[str, str]]:
    """(classname, name) -> ("xfailed" | "skipped", message) for the test cases JUnit marks as skipped."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    if path is None or not path.exists():
        return out
    for case in ET.parse(path).getroot().iter("testcase"):
        skipped = case.find("skipped")
        if skipped is None:
            continue
        kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        message = skipped.get("message") or ""
        out[(case.get("classname", ""), case.get("name", ""))] = (kind, message)
    return out


def read_rows(json_path: Path, junit_path: Path | None) -> list[Row]:
    skips = read_junit(junit_path)
    rows: dict[str, Row] = {}
    if not json_path.exists():
        return []
    for line in json_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        outcome, reason = e["outcome"], ""
        if outcome == "skipped":
            outcome, reason = skips.get(_junit_key(e["nodeid"]), ("skipped", ""))
            reason = reason.removeprefix("reason: ")
        name = e["name"]
        if "[" in e["nodeid"]:
            name += " [" + e["nodeid"].split("[", 1)[1].rstrip("]") + "]"
        rows[e["nodeid"]] = Row(nodeid=e["nodeid"], kind=e.get("kind", "fault"), name=name, how=e.get("how", ""),
                                outcome=outcome, details=str(e.get("details", "")), reason=reason,
                                seconds=float(e.get("seconds", 0.0)))
    return list(rows.values())


# --- rendering -----------------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _mark(row: Row) -> str:
    return {"passed": "✓", "failed": "✗", "xfailed": "✗ known bug", "skipped": "– not run"}.get(row.outcome, "?")


def _count(rows: list[Row], kind: str) -> tuple[int, int, int, int, int]:
    """(tried, held, known bugs, failed, not run) for ``kind``."""
    mine = [r for r in rows if r.kind == kind]
    ran = [r for r in mine if r.outcome != "skipped"]
    return (len(ran), sum(r.outcome == "passed" for r in ran), sum(r.outcome == "xfailed" for r in ran),
            sum(r.outcome == "failed" for r in ran), len(mine) - len(ran))


def _tail(bugs: int, failed: int, skipped: int, bug_words: str) -> str:
    notes = ([f"{bugs} {bug_words}"] if bugs else []) + ([f"{failed} FAILED"] if failed else [])
    return (f" ({', '.join(notes)})" if notes else "") + (f", {skipped} not run" if skipped else "")


def summary(rows: list[Row]) -> str:
    f_tried, f_held, f_bugs, f_failed, f_skip = _count(rows, "fault")
    a_tried, a_held, a_bugs, a_failed, a_skip = _count(rows, "attack")
    l_tried, l_held, _, _, _ = _count(rows, "limit")
    loads = [r for r in rows if r.kind == "load"]
    parts = [f"**Faults injected: {f_tried}, survived: {f_held}**" + _tail(f_bugs, f_failed, f_skip, "known bugs"),
             f"**Attacks tried: {a_tried}, blocked: {a_held}**"
             + _tail(a_bugs, a_failed, a_skip, "not blocked: known bugs, see below")]
    if l_tried:
        parts.append(f"Documented limits demonstrated: {l_held}/{l_tried}")
    if loads:
        held = [r for r in loads if r.outcome == "passed"]
        load = f"**Load: {'held' if len(held) == len(loads) else 'FAILED'} ({len(held)}/{len(loads)})**"
        evidence = [f"{r.name}: {r.details}" for r in loads if r.details]
        if evidence:
            load += " — " + "; ".join(_cell(x) for x in evidence)
        parts.append(load)
    else:
        parts.append("**Load: not run** (no load test was collected)")
    return ". ".join(parts) + "."


def table(rows: list[Row]) -> list[str]:
    out = ["| what was tried | how | outcome | evidence |", "| --- | --- | :---: | --- |"]
    for r in rows:
        evidence = r.details
        if r.outcome in ("xfailed", "skipped") and not evidence:
            evidence = r.reason
        how = f"{r.how} (`{r.nodeid}`)"
        out.append(f"| {_cell(r.name)} | {_cell(how)} | {_mark(r)} | {_cell(evidence)} |")
    return out


COLLUSION_INTRO = [
    ("The contracts cannot tell an honest worker from a dishonest one; for a replicated task (R > 1) they only count "
    "digests, and the digest held by more than half of the replicas wins. So:"),
]
COLLUSION_CAN = [
    ("* **Colluders who hold a strict majority of a task's replicas decide its result.** With 2 of 3, 3 of 5, … "
    "replicas they make a wrong digest final, they are paid, and the honest minority is slashed (its stake goes to "
    "the treasury, its reputation is halved). The row *colluding majority (2 of 3) wins* above shows exactly that. "
    "Nothing on chain undoes it; a requester can only notice off chain (re-run a sample of tasks, check results "
    "with the app's own verifier) and stop accepting those workers."),
    ("* **In an extra round, earlier digests are public.** A task without a majority gets two more replicas; the "
    "first round's reveals are already on chain, so the new replicas can copy one and decide the vote without "
    "running anything (row *copying a digest revealed in an earlier round*). Commit–reveal hides digests only "
    "within one round."),
    ("* **Getting a majority needs no special power.** One person can register any number of worker addresses "
    "(Sybil), and claims are first come, first served: there is no random assignment of workers to tasks, so a "
    "group that watches the chain and claims fast can take all R replicas of the tasks it chooses. A job cannot "
    "name the workers it accepts, only capabilities and a minimum reputation."),
]
LATE_COMMIT = (
    "* **Within one round, too, until the known bug above is fixed:** a replica that has not committed when the "
    "commit window closes can still claim or commit after a reveal was published, copy that digest and be paid "
    "(row *copy a reveal by committing after the commit window*)."
)
COLLUSION_CANNOT = (
    "What a colluding *minority* cannot do (rows above): change a result, be paid for a wrong result (it is "
    "slashed), copy another replica's commitment (it binds the worker's address), replay or forge another worker's "
    "signed commit, reveal or results (the EIP-712 domain binds chain id and contract, the messages bind the task), "
    "hold two replicas of one task from one address, block finalization (anyone may call it) or keep a requester "
    "from its refund after the deadline."
)
COLLUSION_BOUNDS = [
    ("* **Stake.** Every replica locks `replicaStake`; a coalition that turns out to be a minority loses it, and a "
    "worker is banned after `maxSlashes` slashes. The gain of a successful attack on one task is at most that "
    "task's pool (R × reward); what it buys is a wrong result, not anybody else's money."),
    ("* **Reputation.** A job can require `minReputation`. A new address starts at 0, gains 1 per accepted result "
    "and is halved on every slash, so fresh Sybil addresses must first do honest work."),
    ("* **The requester's choice of R**, against the fraction *f* of claims it assumes come from one colluding "
    "group. If claims arrived independently (they need not, see above), the chance that the group holds a majority "
    "of one task's R replicas is `P = Σ_{k > R/2} C(R, k) · f^k · (1 − f)^(R − k)`:"),
]
COLLUSION_END = (
    "R must be chosen against the fraction of colluders one is prepared to assume; at f ≥ 50 % no R helps, and "
    "since claiming is not random a determined group can do better than these odds. The default cap is "
    "`maxReplicas` = 9 (at most 16)."
)


def collusion_section(rows: list[Row]) -> list[str]:
    fractions = [0.05, 0.10, 0.20, 0.30, 0.40]
    rs = [1, 3, 5, 7, 9]

    def p_majority(f: float, r: int) -> float:
        return sum(comb(r, k) * f**k * (1 - f) ** (r - k) for k in range(r // 2 + 1, r + 1))

    late = [LATE_COMMIT] if any(r.outcome == "xfailed" and r.name.startswith("copy a reveal") for r in rows) else []
    lines = ["## What a colluding majority can do", "", *COLLUSION_INTRO, "", *COLLUSION_CAN, *late, "",
             COLLUSION_CANNOT, "", "What bounds a colluding majority:", "", *COLLUSION_BOUNDS, "",
             "| f (colluding share) | " + " | ".join(f"R = {r}" for r in rs) + " |",
             "| --- | " + " | ".join("---:" for _ in rs) + " |"]
    for f in fractions:
        cells = [f"{p:.2%}" if (p := p_majority(f, r)) >= 0.0001 else "< 0.01%" for r in rs]
        lines.append(f"| {f:.0%} | " + " | ".join(cells) + " |")
    return [*lines, "", COLLUSION_END]


def render(rows: list[Row], *, command: str, seconds: float, pytest_rc: int | None) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    lines = [
        "# Reliability",
        "",
        ("What Tasknet was put through, how, and whether it held: faults injected into the running components "
        "(workers, chain, IPFS, Docker, disk), attacks by adversarial workers, requesters, apps and tokens against "
        "the real contracts and daemons, and sustained load. Every row is one test of the suite marked "
        "`@pytest.mark.reliability(kind, name, how)`; it passes only when the system held. Nothing here is edited "
        "by hand: `scripts/reliability` runs the suite and rewrites this file."),
        "",
        (f"Generated {now} on {os.cpu_count()} cores, {mem / 1024:.0f} GiB, {platform.machine()}, Python "
        f"{platform.python_version()}, in {seconds:.0f} s, by:"),
        "",
        "```",
        command,
        "```",
        "",
        "## Summary",
        "",
        summary(rows),
        "",
    ]
    if pytest_rc not in (None, 0):
        lines += [(f"pytest exited with status {pytest_rc}: at least one test failed or errored (see ✗ rows, or "
                  "the run's output for errors outside a test)."), ""]
    bugs = [r for r in rows if r.outcome == "xfailed"]
    if bugs:
        lines += ["### Known bugs (expected failures, `xfail(strict=True)`)", ""]
        lines += [f"* **{r.name}** (`{r.nodeid}`): {_cell(r.reason)}" for r in bugs]
        lines.append("")
    kinds = [k for k in KIND_ORDER if any(r.kind == k for r in rows)]
    kinds += sorted({r.kind for r in rows} - set(KIND_ORDER))
    for kind in kinds:
        mine = [r for r in rows if r.kind == kind]
        lines += [f"## {KIND_TITLES.get(kind, kind.capitalize())}", "", KIND_INTROS.get(kind, ""), ""]
        if kind == "attack":
            groups: dict[str, list[Row]] = {}
            for r in mine:
                groups.setdefault(attack_group(r.nodeid), []).append(r)
            order = list(dict.fromkeys(g for _, _, g in ATTACK_GROUPS)) + ["Other attacks"]
            for group in sorted(groups, key=order.index):
                held = sum(r.outcome == "passed" for r in groups[group])
                lines += [f"### {group} ({held}/{len(groups[group])} blocked)", ""]
                lines += table(groups[group])
                lines.append("")
        else:
            lines += table(mine)
            lines.append("")
    if "load" not in kinds:
        lines += ["## Load", "", "No load test was collected in this run.", ""]
    lines += collusion_section(rows)
    return "\n".join(lines).rstrip() + "\n"


# --- main ----------------------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=ROOT / "RELIABILITY.md", help="report to write")
    parser.add_argument("--from-json", type=Path, help="render this --reliability-report file; run nothing")
    parser.add_argument("--junit", type=Path, help="with --from-json: the run's JUnit XML (tells xfail from skip)")
    parser.add_argument("--keep-results", type=Path, metavar="DIR",
                        help="also keep the run's results.jsonl and junit.xml in DIR (for --from-json later)")
    args, extra = parser.parse_known_args(argv)
    started = time.monotonic()
    if args.from_json:
        rows = read_rows(args.from_json, args.junit)
        rc: int | None = None
        command = f"scripts/reliability --from-json {args.from_json}"
    else:
        with tempfile.TemporaryDirectory(prefix="tasknet-reliability-") as tmp:
            json_path, junit_path = Path(tmp) / "results.jsonl", Path(tmp) / "junit.xml"
            rc, _ = run_pytest(extra, json_path, junit_path)
            rows = read_rows(json_path, junit_path)
            if args.keep_results:
                args.keep_results.mkdir(parents=True, exist_ok=True)
                for f in (json_path, junit_path):
                    if f.exists():
                        shutil.copy(f, args.keep_results / f.name)
        command = "scripts/reliability" + "".join(" " + shlex.quote(a) for a in extra) + \
            "   # = pytest -m reliability tests/ --reliability-report … " + " ".join(shlex.quote(a) for a in extra)
        if rc == 5 or (rc == 0 and not rows):
            print("reliability: no test marked `reliability` was collected; "
                  f"{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} left as it was",
                  file=sys.stderr)
            return 5
        if rc not in (0, 1):
            print(f"reliability: pytest exited with status {rc} (usage error, interruption or internal error); "
                  "no report written", file=sys.stderr)
            return rc
    if not rows:
        print("reliability: no result to report", file=sys.stderr)
        return 5
    args.out.write_text(render(rows, command=command.rstrip(), seconds=time.monotonic() - started, pytest_rc=rc),
                        encoding="utf-8")
    failed = [r for r in rows if r.outcome == "failed"]
    print(f"reliability: wrote {args.out} — " + summary(rows).replace("**", ""), file=sys.stderr)
    for r in failed:
        print(f"reliability: NOT HELD: {r.kind}: {r.name} ({r.nodeid})", file=sys.stderr)
    if rc is None:
        return 1 if failed else 0
    return 1 if (rc != 0 or failed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
