"""`dlspec check` on specs with thousands of mistakes: the cost must grow linearly.

Generates specs with N mistakes of one sort each and runs `python -m dlspec check
--no-shapes FILE` on them as fresh subprocesses (Python and dlspec start-up included):

* layer-keys: one `linear:` mapping with N unknown keys (`bogus_key_17: 1`)
* top-keys:   N unknown keys at the top level of the spec
* values:     N layers `linear: -17`, each a bad value
* from:       N layers, each reading an unknown layer with `from:` (each miss is compared
              with every name above it for a "did you mean")

For each it prints the seconds, the problems reported (`… and K more problems` is read back,
so every problem was found, not only the 50 printed), µs per problem after subtracting the
start-up (a one-mistake spec), and the ratio of the per-problem cost at the largest N to that
at the smallest: ≈ 1 is linear; a quadratic cost shows as ≈ largest / smallest (20 for
1,000 → 20,000).

Usage: python benchmarks/check_many_errors.py [--sizes 1000 10000 20000] [--cases ...]
Reports only; the exit code is 0 whatever it measures. ~1 minute on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HEADER = ["dlspec: 1", "name: many", "inputs:", "  x: {shape: [4]}"]


def layer_keys(n: int) -> str:
    """A `linear:` mapping with n unknown keys."""
    keys = [f"      bogus_key_{i}: 1" for i in range(n)]
    return "\n".join([*HEADER, "network:", "  - linear:", "      out_features: 3", *keys]) + "\n"


def top_keys(n: int) -> str:
    """n unknown keys at the top level."""
    keys = [f"bogus_key_{i}: 1" for i in range(n)]
    return "\n".join([*HEADER, "network:", "  - linear: 3", *keys]) + "\n"


def values(n: int) -> str:
    """n layers with a bad value each."""
    layers = [f"  - linear: -{i + 1}" for i in range(n)]
    return "\n".join([*HEADER, "network:", *layers]) + "\n"


def from_misses(n: int) -> str:
    """n named layers, each reading a layer that does not exist."""
    layers = [f"  - {{name: l{i}, linear: 3, from: nosuch{i}}}" for i in range(n)]
    return "\n".join([*HEADER, "network:", *layers]) + "\n"


CASES: dict[str, Callable[[int], str]] = {
    "layer-keys": layer_keys, "top-keys": top_keys, "values": values, "from": from_misses}
MORE = re.compile(r"… and ([\d,]+) more problems?")
LOCATED = re.compile(r"^\S+:\d+:\d+: ", re.M)


def run_check(path: Path) -> tuple[float, int, int]:
    """Wall seconds, exit code and number of problems of one `dlspec check --no-shapes`."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", "--no-shapes", str(path)],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    shown = len(LOCATED.findall(result.stderr))
    more = MORE.search(result.stderr)
    return seconds, result.returncode, shown + (int(more.group(1).replace(",", "")) if more
                                                else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = folder / "one.yaml"
        base.write_text(values(1))
        startup = min(run_check(base)[0] for _ in range(3))
        print(f"start-up (a one-mistake spec): {startup:.2f} s\n")
        print(f"{'case':12} {'N':>7} {'KB':>6} {'exit':>4} {'problems':>9} {'seconds':>8} "
              f"{'µs/problem':>11}")
        for case in args.cases:
            per_problem = []
            for n in args.sizes:
                path = folder / f"{case}_{n}.yaml"
                path.write_text(CASES[case](n))
                seconds, code, problems = run_check(path)
                cost = (seconds - startup) / max(problems, 1) * 1e6
                per_problem.append(cost)
                print(f"{case:12} {n:7,} {path.stat().st_size / 1024:6.0f} {code:4} "
                      f"{problems:9,} {seconds:8.2f} {cost:11.0f}", flush=True)
            ratio = per_problem[-1] / per_problem[0] if per_problem[0] > 0 else float("nan")
            print(f"{case:12} per-problem cost at N={args.sizes[-1]:,} / N={args.sizes[0]:,}: "
                  f"{ratio:.2f} (linear ≈ 1, quadratic ≈ {args.sizes[-1] / args.sizes[0]:.0f})\n")


if __name__ == "__main__":
    main()
