"""Batch-1 CPU latency of exported ONNX models in ONNX Runtime against PyTorch eager.

For specs/lenet5.yaml (1×1×32×32) and specs/resnet18.yaml (1×3×224×224): the network is
compiled once with `dlspec.compile_spec` (after `torch.manual_seed(0)`), and that same module is
exported with `dlspec.export_spec(spec, path, module=model)` (which verifies the file in ONNX
Runtime at batch 1, 2, 7), so both sides hold the same weights. Before timing, every ONNX
Runtime session below is run once on the timing input and its output compared with the
module's (max |Δ| printed; a mismatch beyond atol 1e-4 / rtol 1e-3 stops the script).

Contenders, all on --threads threads (default `torch.get_num_threads()`):

    torch           the GraphModule in eval mode under `torch.inference_mode()`
    torch 1 thread  the same on one thread (a diagnostic, when --threads > 1)
    ort             InferenceSession, CPUExecutionProvider, graph_optimization_level
                    ORT_ENABLE_ALL (ONNX Runtime's default), intra_op_num_threads =
                    threads, sequential execution: the headline
    ort basic       the same with ORT_ENABLE_BASIC (standard ONNX rewrites only: what
                    `dlspec export --optimize` bakes into the file)
    ort 1 thread    ORT_ENABLE_ALL, intra_op_num_threads = 1
    ort parallel    ORT_ENABLE_ALL, execution_mode ORT_PARALLEL, inter_op = intra_op =
                    threads
    ort no spin     ORT_ENABLE_ALL, session.intra_op.allow_spinning = 0 (idle pool
                    threads sleep instead of spinning: matters when other processes share
                    the cores)

Timing: warm-up (≥ 5 calls and ≥ 0.3 s of each contender), then --rounds rounds; in each
round every contender runs one untimed call followed by a block of timed calls
(--lenet-runs or --resnet-runs divided by --rounds), the order of the contenders rotating
from round to round, so that a change in machine load hits all of them alike and no
contender's block starts while another thread pool is still spinning down. Each call is
timed on its own (`time.perf_counter`). Reported: the median over all timed calls; the
ORT/torch ratio of the medians (the headline); the median and quartiles of the per-round
ratios (robust to drift in load); and the ratio of the minima (each side's best case:
closest to a quiet machine). A verdict is marked "noisy" when the per-round ratios'
quartiles spread by more than a quarter of the ratio: another process was competing for the
cores, which hurts torch's OpenMP threads far more than ONNX Runtime's pool (a preempted
thread stalls torch's barrier), so rerun then.
Targets (issue "Speed"): ORT/torch ≤ 0.3 for LeNet-5, ≤ 0.6 for ResNet-18.

Last, `python -m dlspec export specs/resnet50.yaml -o TMP/resnet50.onnx` is timed end to end
as a fresh subprocess (Python start-up, imports, build, torch.onnx export, checks and the
ONNX Runtime verification all included); the exporter's own seconds are read from its
output. Target < 60 s.

Usage: python benchmarks/onnx_vs_torch.py [--quick] [--threads N] [--lenet-runs 200]
       [--resnet-runs 30] [--rounds 10] [--export-runs 1] [--no-export]
       [--networks lenet5 resnet18]
About 30 s on 2 quiet cores (--quick: about 25 s; the ResNet-50 export is 9 s of either);
a busy machine slows it down severalfold.
Reports only; the exit code is 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import dlspec

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"lenet5": 0.3, "resnet18": 0.6}
EXPORT_TARGET_S = 60.0
NETWORKS = {  # spec name: (title, input shape at batch 1)
    "lenet5": ("LeNet-5", (1, 1, 32, 32)),
    "resnet18": ("ResNet-18", (1, 3, 224, 224)),
}


@dataclass
class Result:
    title: str
    shape: tuple[int, ...]
    medians: dict[str, float]  # seconds per call
    minima: dict[str, float]
    paired: list[float]  # per-round ratio ort / torch
    export_seconds: float


# --- ONNX Runtime sessions -------------------------------------------------------------------


def session_options(threads: int) -> dict[str, ort.SessionOptions]:
    """The ONNX Runtime configurations to time, by name; "ort" is the headline."""
    def options(level: str = "ORT_ENABLE_ALL", intra: int = threads, parallel: bool = False,
                spin: bool = True) -> ort.SessionOptions:
        o = ort.SessionOptions()
        o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        o.intra_op_num_threads = intra
        if parallel:
            o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            o.inter_op_num_threads = threads
        else:
            o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        o.log_severity_level = 3
        return o

    chosen = {
        "ort": options(),
        "ort basic": options(level="ORT_ENABLE_BASIC"),
        "ort 1 thread": options(intra=1),
        "ort parallel": options(parallel=True),
        "ort no spin": options(spin=False),
    }
    if threads == 1:
        del chosen["ort 1 thread"]
    return chosen


def ort_call(session: ort.InferenceSession, x: np.ndarray) -> Callable[[], object]:
    name = session.get_inputs()[0].name
    feed = {name: x}
    return lambda: session.run(None, feed)


@dataclass
class Contender:
    call: Callable[[], object]
    context: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """inference_mode on `threads` threads, for one block of calls."""
    torch.set_num_threads(threads)
    with torch.inference_mode():
        yield


# --- timing ----------------------------------------------------------------------------------


def warm_up(contenders: dict[str, Contender]) -> None:
    for contender in contenders.values():
        with contender.context():
            start, n = time.perf_counter(), 0
            while n < 5 or time.perf_counter() - start < 0.3:
                contender.call()
                n += 1


def timed_block(contender: Contender, count: int) -> list[float]:
    call = contender.call
    with contender.context():
        call()  # untimed lead-in: this contender's thread pool wakes up
        times = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return times


def interleaved(calls: dict[str, Contender], runs: int,
                rounds: int) -> dict[str, list[list[float]]]:
    """Per contender, per round, the seconds of each timed call."""
    rounds = max(1, min(rounds, runs))
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    names = list(calls)
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for r, count in enumerate(per_round):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed_block(calls[name], count))
    return times


# --- one network -----------------------------------------------------------------------------


def measure(name: str, args: argparse.Namespace, folder: Path) -> Result:
    title, shape = NETWORKS[name]
    runs = args.lenet_runs if name == "lenet5" else args.resnet_runs
    print(f"\n{title}, batch 1 × {'×'.join(map(str, shape[1:]))}")
    spec = dlspec.load(ROOT / "specs" / f"{name}.yaml")
    torch.manual_seed(0)
    model = dlspec.compile_spec(spec).eval()
    (exported,) = dlspec.export_spec(spec, folder / f"{name}.onnx", module=model)
    print("  exported " + "\n  ".join(exported.lines()))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x_np = x.numpy()
    with torch.inference_mode():
        expected = model(x).numpy()
    calls = {"torch": Contender(lambda: model(x), lambda: torch_threads(args.threads))}
    if args.threads > 1:  # a diagnostic: how much torch gains from its second thread
        calls["torch 1 thread"] = Contender(lambda: model(x), lambda: torch_threads(1))
    for key, options in session_options(args.threads).items():
        session = ort.InferenceSession(str(exported.path), options,
                                       providers=["CPUExecutionProvider"])
        calls[key] = Contender(ort_call(session, x_np))
        got = calls[key].call()[0]  # type: ignore[index]
        worst = float(np.abs(got - expected).max())
        if not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
            raise SystemExit(f"{key}: ONNX Runtime's output differs from PyTorch's "
                             f"(max |Δ| {worst:.3g}); the weights do not match")
        if key == "ort":
            print(f"  same weights: ONNX Runtime vs PyTorch on the timing input, max |Δ| "
                  f"{worst:.1e} (outputs up to {np.abs(expected).max():.2f})")
    warm_up(calls)
    times = interleaved(calls, runs, args.rounds)
    flat = {key: [t for block in blocks for t in block] for key, blocks in times.items()}
    medians = {key: statistics.median(values) for key, values in flat.items()}
    paired = [statistics.median(o) / statistics.median(t)
              for o, t in zip(times["ort"], times["torch"], strict=True)]
    print(f"  {len(times['torch'])} rounds, {len(flat['torch'])} timed calls per contender, "
          f"interleaved after warm-up")
    for key, value in medians.items():
        ratio = "" if key == "torch" else f"   ÷ torch {value / medians['torch']:.3f}"
        print(f"  {key:14} median {value * 1e3:8.3f} ms  (min {min(flat[key]) * 1e3:7.3f} ms)"
              f"{ratio}")
    minima = {key: min(values) for key, values in flat.items()}
    return Result(title, shape, medians, minima, paired, exported.seconds)


# --- the ResNet-50 export as a subprocess ------------------------------------------------------


def time_export(folder: Path, runs: int) -> list[tuple[float, float | None]]:
    """(wall seconds, exporter's own seconds) of each `dlspec export` run."""
    out = folder / "resnet50.onnx"
    argv = [sys.executable, "-m", "dlspec", "export", "specs/resnet50.yaml", "-o", str(out)]
    print(f"\n$ {' '.join(['python', *argv[1:]])}   (fresh subprocess, end to end)")
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"  failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
            continue
        found = re.search(r"opset \d+, ([\d.]+) s\)", done.stdout)
        own = float(found.group(1)) if found else None
        results.append((wall, own))
        print("  " + "\n  ".join(done.stdout.strip().splitlines()))
        print(f"  wall {wall:.1f} s" + (f" (exporter's own {own:.1f} s)" if own else ""))
    return results


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (LeNet-5 50, ResNet-18 10, 5 rounds)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--lenet-runs", type=int, default=200)
    parser.add_argument("--resnet-runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--export-runs", type=int, default=1)
    parser.add_argument("--no-export", action="store_true", help="skip the ResNet-50 export")
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    args = parser.parse_args()
    if args.quick:
        args.lenet_runs, args.resnet_runs, args.rounds = 50, 10, 5
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}")
    if load > (os.cpu_count() or 1) / 2:
        print("warning: the machine is busy; timings will be noisy")

    with tempfile.TemporaryDirectory(prefix="onnx_vs_torch_") as tmp:
        folder = Path(tmp)
        results = {name: measure(name, args, folder) for name in args.networks}
        exports = [] if args.no_export else time_export(folder, args.export_runs)

    print(f"\nSummary ({args.threads} threads, batch 1; ORT = ORT_ENABLE_ALL, "
          f"intra_op_num_threads {args.threads})")
    print("| model | torch median | onnxruntime median | ratio ORT/torch | per-round ratio: "
          "median (quartiles) | ratio of minima | target | result |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    for name, r in results.items():
        ratio = r.medians["ort"] / r.medians["torch"]
        q = statistics.quantiles(r.paired, n=4) if len(r.paired) > 1 else [r.paired[0]] * 3
        verdict = "pass" if ratio <= TARGETS[name] else "miss"
        noisy = q[2] - q[0] > 0.25 * ratio
        print(f"| {r.title} 1×{'×'.join(map(str, r.shape[1:]))} | "
              f"{r.medians['torch'] * 1e3:.3f} ms | {r.medians['ort'] * 1e3:.3f} ms | "
              f"{ratio:.3f} | {statistics.median(r.paired):.3f} ({q[0]:.3f}–{q[2]:.3f}) | "
              f"{r.minima['ort'] / r.minima['torch']:.3f} | ≤ {TARGETS[name]} | "
              f"{verdict}{' (noisy)' if noisy else ''} |")
    if exports:
        wall = statistics.median(w for w, _ in exports)
        own = [o for _, o in exports if o is not None]
        verdict = "pass" if wall < EXPORT_TARGET_S else "miss"
        print(f"| `dlspec export specs/resnet50.yaml` | | | | | wall {wall:.1f} s"
              + (f" (exporter {statistics.median(own):.1f} s)" if own else "")
              + f" | < {EXPORT_TARGET_S:.0f} s | {verdict} |")
    if results:
        print(f"\nEvery contender, median ms (÷ torch on {args.threads} "
              f"thread{'s' if args.threads > 1 else ''}):")
        for r in results.values():
            cells = ", ".join(f"{key} {value * 1e3:.3f} ({value / r.medians['torch']:.2f})"
                              for key, value in r.medians.items() if key != "torch")
            print(f"  {r.title}: torch {r.medians['torch'] * 1e3:.3f}; {cells}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
