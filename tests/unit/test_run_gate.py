"""worker._gate.RunGate: the worker's run slots, on a real asyncio loop (no worker, no chain: isolates the
admission rule and its order)."""

from __future__ import annotations

import asyncio

import pytest

from worker._gate import RunGate, Size

ONE, TWO, BIG_RAM = Size(1, 800), Size(2, 800), Size(1, 5000)


async def _started(gate: RunGate, size: Size, log: list[str], name: str) -> None:
    await gate.acquire(size)
    log.append(name)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_tasks_run_while_their_cores_and_memory_fit() -> None:
    async def main() -> None:
        gate, log = RunGate(cores=4, ram_mb=6000), []
        tasks = [asyncio.create_task(_started(gate, s, log, n)) for n, s in
                 [("a", ONE), ("b", TWO), ("c", ONE), ("d", ONE)]]
        await _settle()
        assert log == ["a", "b", "c"] and gate.used == Size(4, 2400)  # d would be a fifth core
        assert gate.would_wait(ONE)
        gate.release(TWO)
        await _settle()
        assert log == ["a", "b", "c", "d"] and gate.used == Size(3, 2400) and gate.running == 3
        await asyncio.gather(*tasks)
        big = asyncio.create_task(_started(gate, BIG_RAM, log, "big"))  # 2400 + 5000 MB > 6000
        await _settle()
        assert "big" not in log
        for size in (ONE, ONE, ONE):
            gate.release(size)
        await _settle()
        assert log[-1] == "big" and gate.used == BIG_RAM
        await big
    asyncio.run(main())


def test_first_come_first_served_a_large_task_is_not_overtaken() -> None:
    async def main() -> None:
        gate, log = RunGate(cores=2, ram_mb=10_000), []
        await gate.acquire(ONE)
        waiting = [asyncio.create_task(_started(gate, s, log, n)) for n, s in [("two", TWO), ("one", ONE)]]
        await _settle()
        assert log == []  # "one" would fit beside the running task, but "two" asked first
        gate.release(ONE)
        await _settle()
        assert log == ["two"]
        gate.release(TWO)
        await _settle()
        assert log == ["two", "one"]
        await asyncio.gather(*waiting)
    asyncio.run(main())


def test_a_task_larger_than_lent_still_runs_alone() -> None:
    async def main() -> None:
        gate = RunGate(cores=2, ram_mb=1000)
        await asyncio.wait_for(gate.acquire(Size(8, 9000)), 1)
        assert gate.would_wait(ONE)
        gate.release(Size(8, 9000))
        assert not gate.would_wait(ONE) and gate.used == Size(0, 0)
    asyncio.run(main())


def test_an_explicit_count_ignores_sizes() -> None:
    async def main() -> None:
        gate, log = RunGate(cores=1, ram_mb=100, count=3), []
        tasks = [asyncio.create_task(_started(gate, Size(4, 4000), log, str(i))) for i in range(4)]
        await _settle()
        assert log == ["0", "1", "2"]
        gate.release(Size(4, 4000))
        await asyncio.gather(*tasks)
        assert gate.running == 3
    asyncio.run(main())


def test_a_cancelled_waiter_takes_nothing_and_frees_the_line() -> None:
    async def main() -> None:
        gate, log = RunGate(cores=2, ram_mb=10_000), []
        await gate.acquire(TWO)
        head = asyncio.create_task(_started(gate, TWO, log, "head"))
        behind = asyncio.create_task(_started(gate, ONE, log, "behind"))
        await _settle()
        head.cancel()
        with pytest.raises(asyncio.CancelledError):
            await head
        gate.release(TWO)
        await _settle()
        assert log == ["behind"] and gate.used == ONE and gate.running == 1
        await behind
    asyncio.run(main())


def test_admitted_as_it_is_cancelled_gives_its_share_back() -> None:
    async def main() -> None:
        gate = RunGate(cores=1, ram_mb=10_000)
        await gate.acquire(ONE)
        waiter = asyncio.create_task(gate.acquire(ONE))
        await _settle()
        gate.release(ONE)  # admits the waiter: its future is done, the task has not resumed yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.running == 0 and gate.used == Size(0, 0) and not gate.would_wait(TWO)
    asyncio.run(main())
