"""Compilation cost against network depth: it must grow linearly.

Generates specs of N = 125, 250, 500, 1000 layers (alternating `linear: 64` and `relu`
on a 64-feature input) and times, in this process, `dlspec.compile_spec(dlspec.loads(text))`:
YAML loading + validation, expansion, shape inference on the meta device and compilation
to a torch.fx.GraphModule. Each size is timed --repeats times (median), after one warm-up
build so torch's one-time start-up costs are not charged to the first size. The same is
done for the `repeat:` form of the spec (a two-layer block repeated), which skips most of
the YAML.

Linear growth shows as a flat per-layer cost: the script prints the ratio of the
per-layer cost at the largest N to that at the smallest (≈ 1 is linear, ≈ 8 would be
quadratic over 125 → 1000). Target: 1,000 layers build in under 2 s.

Usage: python benchmarks/compile_scaling.py [--sizes 125 250 500 1000] [--repeats 5]
Reports only; the exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

import torch

import dlspec
from dlspec.compile import compile_graph
from dlspec.graph import infer_shapes

HEADER = "dlspec: 1\nname: deep\ninputs:\n  x: {shape: [64]}\n"
TARGET_LAYERS, TARGET_SECONDS = 1000, 2.0


def flat_spec(layers: int) -> str:
    """`layers` entries written out one per line: linear, relu, linear, relu, ..."""
    entries = ["  - linear: 64" if i % 2 == 0 else "  - relu" for i in range(layers)]
    return HEADER + "network:\n" + "\n".join(entries) + "\n"


def repeat_spec(layers: int) -> str:
    """The same network as a two-layer block repeated (plus one linear when N is odd)."""
    tail = "  - linear: 64\n" if layers % 2 else ""
    return (HEADER + "blocks:\n  unit:\n    layers: [{linear: 64}, relu]\n"
            f"network:\n  - {{unit: {{}}, repeat: {layers // 2}}}\n" + tail)


def time_phases(text: str) -> dict[str, float]:
    """Seconds for each stage of build(loads(text)), and the layer count."""
    gc.collect()
    t0 = time.perf_counter()
    spec = dlspec.loads(text)
    t1 = time.perf_counter()
    (graph,) = dlspec.graphs(spec).values()
    t2 = time.perf_counter()
    shaped = infer_shapes(graph)
    t3 = time.perf_counter()
    model = compile_graph(shaped)
    t4 = time.perf_counter()
    assert isinstance(model, torch.fx.GraphModule)
    return {"load": t1 - t0, "expand": t2 - t1, "shapes": t3 - t2, "compile": t4 - t3,
            "layers": len(graph.nodes)}


def time_build(text: str) -> float:
    """Seconds for the public one-call path, dlspec.compile_spec(dlspec.loads(text))."""
    gc.collect()
    start = time.perf_counter()
    dlspec.compile_spec(dlspec.loads(text))
    return time.perf_counter() - start


def report(title: str, make: Callable[[int], str], sizes: list[int], repeats: int) -> float:
    print(f"\n{title}")
    print(f"{'N':>6} {'layers':>6} {'build s':>8} {'µs/layer':>9} | {'load':>6} {'expand':>6} "
          f"{'shapes':>6} {'compile':>7}  (median s per phase)")
    per_layer: dict[int, float] = {}
    totals: dict[int, float] = {}
    for n in sizes:
        text = make(n)
        builds = [time_build(text) for _ in range(repeats)]
        runs = [time_phases(text) for _ in range(repeats)]
        phase = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        totals[n] = statistics.median(builds)
        per_layer[n] = totals[n] / phase["layers"]
        print(f"{n:6d} {int(phase['layers']):6d} {totals[n]:8.3f} {per_layer[n] * 1e6:9.0f} | "
              f"{phase['load']:6.3f} {phase['expand']:6.3f} {phase['shapes']:6.3f} "
              f"{phase['compile']:7.3f}")
    small, large = min(sizes), max(sizes)
    ratio = per_layer[large] / per_layer[small]
    print(f"per-layer cost at N={large} / at N={small}: {ratio:.2f} "
          f"({'linear' if ratio < 1.5 else 'super-linear'}: 1.0 is linear, "
          f"{large / small:.0f} would be quadratic)")
    if len(sizes) >= 3:
        slope, intercept = statistics.linear_regression(list(totals), list(totals.values()))
        r = statistics.correlation(list(totals), list(totals.values()))
        print(f"least-squares fit: build ≈ {intercept:.3f} s + {slope * 1e6:.0f} µs × N "
              f"(r² = {r * r:.3f})")
    if TARGET_LAYERS in totals:
        verdict = "pass" if totals[TARGET_LAYERS] < TARGET_SECONDS else "FAIL"
        print(f"{TARGET_LAYERS} layers: {totals[TARGET_LAYERS]:.3f} s "
              f"(target < {TARGET_SECONDS:g} s): {verdict}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[125, 250, 500, 1000])
    parser.add_argument("--repeats", type=int, default=5, help="timed builds per size (median)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "compile = dlspec.compile_spec(dlspec.loads(text)), in process")
    dlspec.compile_spec(dlspec.loads(flat_spec(4)))  # warm-up: torch's lazy imports, meta kernels
    report("alternating linear 64 / relu, one entry per layer", flat_spec, args.sizes,
           args.repeats)
    report("the same as `{unit: {}, repeat: N/2}` of a [linear 64, relu] block", repeat_spec,
           args.sizes, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
