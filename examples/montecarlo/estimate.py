"""Estimate pi, and the mean distance of a point of the unit square to the origin ((sqrt(2) + asinh(1)) / 3, about
0.76520), by stratified Monte Carlo: one random point in each cell of a GRID x GRID grid over the unit square.

The seed comes from os.urandom, so every run writes different floating-point numbers (and seed) to
/out/estimate.json. For the default grid of 500 the pi estimate's standard deviation is about 2e-4 and the mean
distance's about 1e-6: far below the tolerances of canon.py (2 decimals for pi, 3 for the distance), whose
rounding boundaries (3.145; 0.7655) lie more than 15 standard deviations away.
"""

import json
import os
import random
import sys


def main() -> None:
    grid = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seed = int.from_bytes(os.urandom(8), "big")
    rng = random.Random(seed)
    step = 1.0 / grid
    inside, distance = 0, 0.0
    for i in range(grid):
        for j in range(grid):
            x, y = (i + rng.random()) * step, (j + rng.random()) * step
            inside += x * x + y * y < 1.0
            distance += (x * x + y * y) ** 0.5
    estimate = 4.0 * inside / (grid * grid)
    out = os.environ.get("TASKNET_OUTPUT", "/out")
    with open(os.path.join(out, "estimate.json"), "w") as fh:
        json.dump({"pi": estimate, "mean_distance": distance / (grid * grid), "samples": grid * grid, "seed": seed}, fh)
    print(f"pi ~ {estimate!r} from {grid * grid} samples (seed {seed})")


if __name__ == "__main__":
    main()
