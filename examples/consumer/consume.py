"""Deploy contracts/examples/ExampleConsumer.sol, post a job that calls it back, and read the result on chain.

    .venv/bin/python examples/consumer/consume.py --app 1 [--devnet-file PATH] [--args 0,24] [--timeout 300]

The marketplace calls ``onTaskResult(taskId, resultDigest, callbackData)`` on the consumer when each task is
final (with a gas cap; a failing callback never blocks finalization). The consumer stores the digest and the
worker's callback data; this script prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oracle import Client, configure_logging, deploy
from oracle.client import JobSpec
from oracle.exceptions import TasknetError
from oracle.protocol import task_id


def run(app_id: int, devnet_file: Path | None, args: list[str], reward: int, timeout: float) -> dict[str, object]:
    with Client.from_devnet(role="requester", devnet_file=devnet_file) as c:
        consumer = deploy(c.w3, "ExampleConsumer", c.market.address, sender=c.signer)
        if c.account.balance().deposited < reward:
            c.account.deposit(reward)
        job = c.jobs.submit(JobSpec(app_id=app_id, tasks=None, count=1, args=args, reward=reward,
                                   callback=consumer.address))
        c.jobs.wait(job.job_id, timeout=timeout)
        tid = task_id(job.job_id, 0)
        return {"consumer": consumer.address, "jobId": job.job_id, "taskId": tid,
                "digest": "0x" + bytes(consumer.functions.digestOf(tid).call()).hex(),
                "callbackData": "0x" + bytes(consumer.functions.dataOf(tid).call()).hex(),
                "delivered": consumer.functions.delivered().call()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--app", type=int, required=True)
    p.add_argument("--devnet-file", type=Path, default=None)
    p.add_argument("--args", default="", help="comma-separated task arguments")
    p.add_argument("--reward", type=int, default=10**17, help="wei")
    p.add_argument("--timeout", type=float, default=300)
    a = p.parse_args()
    configure_logging()  # logs go to stderr, the JSON answer to stdout
    try:
        out = run(a.app, a.devnet_file, [x for x in a.args.split(",") if x], a.reward, a.timeout)
    except TasknetError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
