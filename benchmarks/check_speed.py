"""Wall time of `dlspec check` on ResNet-50, with and without shape inference.

Measures, as fresh subprocesses (so Python and torch start-up are included), the median
of N runs of:

    python -m dlspec check specs/resnet50.yaml               target < 3 s
    python -m dlspec check --no-shapes specs/resnet50.yaml   target < 0.5 s
    python -c "import torch"                                 baseline: torch start-up
    python -c pass                                           baseline: Python start-up

The four commands are interleaved round by round, after one untimed warm-up round, so a
slow patch of the machine hits all of them alike. It then runs the `--no-shapes` check once
more under `-X importtime` and reports whether any `torch` module was imported (it must
not be: editors and pre-commit hooks use it).

Usage: python benchmarks/check_speed.py [--runs 5] [--spec specs/resnet50.yaml]
Reports only; the exit code is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to completion; return its wall time and result."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result


def torch_imports(spec: str) -> tuple[list[str], int, str]:
    """Modules named torch/torch.* imported by `check --no-shapes`, all modules, its stdout."""
    _, result = timed([sys.executable, "-X", "importtime", "-m", "dlspec", "check",
                       "--no-shapes", spec])
    modules = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line]
    modules = [m for m in modules if m != "imported package"]  # the header line
    torchy = [m for m in modules if m == "torch" or m.startswith("torch.")]
    return torchy, len(modules), result.stdout.strip() or result.stderr.strip()


PHASES = r"""
import sys, time
t = [time.perf_counter()]
import dlspec; t.append(time.perf_counter())
spec = dlspec.load(sys.argv[1]); t.append(time.perf_counter())
dlspec.graphs(spec); t.append(time.perf_counter())
import torch; t.append(time.perf_counter())
dynamo_before = "torch._dynamo" in sys.modules
dlspec.shapes(spec); t.append(time.perf_counter())
dynamo_after = "torch._dynamo" in sys.modules
dlspec.shapes(spec); t.append(time.perf_counter())
print(*[b - a for a, b in zip(t, t[1:])], dynamo_before, dynamo_after)
"""


def phases(spec: str) -> str:
    """One in-process run of `check`, timed phase by phase."""
    _, result = timed([sys.executable, "-c", PHASES, spec])
    if result.returncode != 0:
        return f"phase timing failed: {result.stderr.strip().splitlines()[-1:]}"
    *seconds, before, after = result.stdout.split()
    *seconds, again = (float(s) for s in seconds)
    names = ["import dlspec", "load+validate", "expand", "import torch", "shape inference"]
    text = ", ".join(f"{n} {s:.3f}" for n, s in zip(names, seconds, strict=True))
    text += (f"\n  shape inference run again in the same process: {again:.3f} s, so "
             f"{seconds[-1] - again:.3f} s of the first run is one-time start-up")
    if before == "False" and after == "True":
        text += "\n  (the first run imported torch._dynamo, which `import torch` alone does not)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--spec", default="specs/resnet50.yaml", help="spec to check")
    args = parser.parse_args()
    if not (ROOT / args.spec).is_file():
        print(f"no spec at {args.spec}", file=sys.stderr)
        return 2

    py = sys.executable
    commands = {
        "python -c pass": ([py, "-c", "pass"], None),
        'python -c "import torch"': ([py, "-c", "import torch"], None),
        f"dlspec check --no-shapes {Path(args.spec).name}":
            ([py, "-m", "dlspec", "check", "--no-shapes", args.spec], 0.5),
        f"dlspec check {Path(args.spec).name}": ([py, "-m", "dlspec", "check", args.spec], 3.0),
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    failed: dict[str, str] = {}
    load_before = os.getloadavg()[0]
    for round_ in range(args.runs + 1):  # round 0 is the untimed warm-up
        for label, (argv, _) in commands.items():
            seconds, result = timed(argv)
            if result.returncode != 0:
                failed[label] = (result.stderr or result.stdout).strip().splitlines()[-1:][0]
            elif round_ > 0:
                times[label].append(seconds)
    load_after = os.getloadavg()[0]

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.runs} "
          f"runs each, load average {load_before:.2f} → {load_after:.2f}"
          + (", PYTHONDONTWRITEBYTECODE=1" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))
    print()
    print(f"{'measurement':44} {'median s':>9} {'min s':>7} {'target':>8}  result")
    print("-" * 80)
    medians: dict[str, float] = {}
    for label, (_, target) in commands.items():
        if label in failed:
            print(f"{label:44} {'error':>9} {'':>7} {'':>8}  {failed[label]}")
            continue
        medians[label] = statistics.median(times[label])
        verdict = "" if target is None else ("pass" if medians[label] < target else "FAIL")
        shown = "baseline" if target is None else f"< {target:g} s"
        print(f"{label:44} {medians[label]:9.3f} {min(times[label]):7.3f} {shown:>8}  {verdict}")

    labels = list(commands)
    torch_start, full = labels[1], labels[3]
    if torch_start in medians and full in medians:
        print(f"\n`check` minus `import torch`: {medians[full] - medians[torch_start]:.3f} s "
              f"(dlspec's own import, validation, expansion and shape inference)")

    print(f"one in-process `check`, seconds by phase:\n  {phases(args.spec)}")

    torchy, count, said = torch_imports(args.spec)
    print(f"\n--no-shapes under -X importtime: {count} modules imported, "
          f"{len(torchy)} of them torch → "
          + ("pass: torch is not imported" if not torchy else
             f"FAIL: imports {', '.join(torchy[:5])}{' …' if len(torchy) > 5 else ''}"))
    print(f"  ({said})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
