"""The canonicalise step of the Monte Carlo example: round pi to DECIMALS places and the mean distance to one more,
drop the seed.

It reads the task's raw output at /in (read-only) and writes the canonical output to /out: what the worker
digests and the replicas vote on. It must be deterministic: same raw output, same bytes.
"""

import json
import sys


def main() -> None:
    decimals = int(sys.argv[1])
    with open("/in/estimate.json") as fh:
        raw = json.load(fh)
    with open("/out/estimate.json", "w") as fh:
        fh.write(f'{{"pi": {raw["pi"]:.{decimals}f}, "mean_distance": {raw["mean_distance"]:.{decimals + 1}f}, '
                 f'"samples": {int(raw["samples"])}}}\n')


if __name__ == "__main__":
    main()
