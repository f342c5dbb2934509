#!/usr/bin/env python3
"""Monte Carlo simulation of credibility mode (PROTOCOL.md, "Credibility mode") over worker populations with
0-30 % cheaters: the error rate of accepted results against the target, and the replicas each task used.

It plays the contract's own rules with the contract's own integers (``oracle.credibility``): one replica at a time
until the committed workers would be credible if they agreed, a spot check of tasks one worker would finalize alone,
groups weighed by credibility (by count in a dispute), slashes resetting a worker's verified count, the cap.

Cheaters collude (they all return the same wrong digest, the worst case for voting) and lie on a share ``s`` of
their tasks; a "patient" cheater behaves until it holds ``--patience`` verified results, then lies. Workers start new
(verified 0), or after ``--warmup`` honest tasks when given.

    scripts/credibility_sim.py                          the table for 0, 10, 20, 30 % cheaters
    scripts/credibility_sim.py --json                   the same, one JSON object on the last line
    scripts/credibility_sim.py --cheaters 0.2 --tasks 50000 --confidence 0.999
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random

from oracle.credibility import CredibilitySettings, all_agree_ppb, best_group

GOOD, BAD = b"good", b"bad!"


@dataclasses.dataclass
class Outcome:
    cheaters: float
    tasks: int
    accepted: int
    wrong: int
    failed: int
    replicas: int
    spot_checks: int

    @property
    def error_rate(self) -> float:
        return self.wrong / self.accepted if self.accepted else 0.0

    @property
    def replicas_per_task(self) -> float:
        return self.replicas / self.tasks

    def row(self) -> dict[str, float | int]:
        return {"cheaters": self.cheaters, "tasks": self.tasks, "accepted": self.accepted, "wrong": self.wrong,
                "failed": self.failed, "error_rate": round(self.error_rate, 6),
                "replicas_per_task": round(self.replicas_per_task, 3), "spot_checks": self.spot_checks}


@dataclasses.dataclass
class Population:
    verified: list[int]
    cheater: list[bool]
    rng: random.Random
    sabotage: float
    patience: int
    collude: bool

    def answer(self, w: int) -> bytes:
        if not self.cheater[w] or self.verified[w] < self.patience or self.rng.random() >= self.sabotage:
            return GOOD
        return BAD if self.collude else BAD + w.to_bytes(4, "big")

    def pick(self, busy: set[int]) -> int:
        while True:
            w = self.rng.randrange(len(self.verified))
            if w not in busy:
                return w


def run_task(pop: Population, c: CredibilitySettings, cap: int) -> tuple[bytes | None, int, bool]:
    """One task under the contract's rules: (accepted digest or None when it failed, replicas used, spot-checked)."""
    slots: list[int] = []
    answers: list[bytes] = []

    def add() -> None:
        w = pop.pick(set(slots))
        slots.append(w)
        answers.append(pop.answer(w))

    # commit phase: one replica at a time until the committed ones, all agreeing, would be credible
    add()
    while len(slots) < cap and all_agree_ppb([pop.verified[w] for w in slots], c.fault_bps) < c.confidence_ppb:
        add()
    checked = len(slots) == 1 and pop.rng.random() < c.spot_check_bps / 10_000
    if checked:
        add()
    while True:  # reveals: settle, or one more replica (dispute or not credible), or fail at the cap
        verdict = best_group([(a, pop.verified[w]) for w, a in zip(slots, answers, strict=True)], c.fault_bps)
        if verdict.credibility_ppb >= c.confidence_ppb:
            for w, a in zip(slots, answers, strict=True):
                if a == verdict.digest:
                    pop.verified[w] += verdict.votes >= 2
                else:
                    pop.verified[w] = 0  # slashed: its credibility resets
            return verdict.digest, len(slots), checked
        if len(slots) >= cap:
            return None, len(slots), checked
        add()


def simulate(cheaters: float, tasks: int, workers: int, c: CredibilitySettings, cap: int, sabotage: float,
             patience: int, warmup: int, seed: int, collude: bool = True) -> Outcome:
    rng = random.Random(seed)
    n_bad = round(workers * cheaters)
    pop = Population(verified=[0] * workers, cheater=[i < n_bad for i in range(workers)], rng=rng,
                     sabotage=sabotage, patience=patience, collude=collude)
    for _ in range(warmup):  # honest history: R = 2 tasks that agree
        a, b = rng.sample(range(workers), 2)
        pop.verified[a] += 1
        pop.verified[b] += 1
    out = Outcome(cheaters, tasks, 0, 0, 0, 0, 0)
    for _ in range(tasks):
        digest, used, checked = run_task(pop, c, cap)
        out.replicas += used
        out.spot_checks += checked
        if digest is None:
            out.failed += 1
        else:
            out.accepted += 1
            out.wrong += digest != GOOD
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cheaters", type=float, action="append", help="share of cheating workers (repeatable)")
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--confidence", type=float, default=0.99)
    ap.add_argument("--fault", type=float, default=0.3, help="the faulty share f the requester assumes")
    ap.add_argument("--spot-check", type=float, default=0.1)
    ap.add_argument("--cap", type=int, default=8)
    ap.add_argument("--sabotage", type=float, default=0.5, help="share of its tasks a cheater lies on")
    ap.add_argument("--patience", type=int, default=0, help="verified results a cheater earns before lying")
    ap.add_argument("--warmup", type=int, default=0, help="honest R = 2 tasks played before counting")
    ap.add_argument("--independent", action="store_true",
                    help="each cheater lies with its own wrong digest (Sarmenta's model) instead of colluding")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    c = CredibilitySettings.of(a.confidence, a.fault, a.spot_check)
    rows = [simulate(x, a.tasks, a.workers, c, a.cap, a.sabotage, a.patience, a.warmup, a.seed,
                     not a.independent).row()
            for x in (a.cheaters or [0.0, 0.1, 0.2, 0.3])]
    print(f"confidence {a.confidence}, assumed f {a.fault}, spot checks {a.spot_check}, cap {a.cap}, "
          f"{a.workers} workers, cheaters {'lie each its own way' if a.independent else 'collude'} on "
          f"{a.sabotage:.0%} of their tasks after {a.patience} verified")
    print(f"{'cheaters':>8} {'accepted':>9} {'wrong':>6} {'error rate':>11} {'target':>8} {'failed':>7} "
          f"{'replicas/task':>13} {'spot checks':>11}")
    for r in rows:
        print(f"{r['cheaters']:>8.0%} {r['accepted']:>9} {r['wrong']:>6} {r['error_rate']:>11.6f} "
              f"{1 - a.confidence:>8.4f} {r['failed']:>7} {r['replicas_per_task']:>13.3f} {r['spot_checks']:>11}")
    if a.json:
        print(json.dumps({"target_error": round(1 - a.confidence, 9), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
