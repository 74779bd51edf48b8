"""Wall time of drawing ResNet-152: folded (the default) and with every repeat expanded.

Measures, as fresh subprocesses (so Python, torch and Graphviz start-up are included), the
median of N runs of:

    dlspec diagram specs/resnet152.yaml -o OUT.svg            target < 5 s
    dlspec diagram specs/resnet152.yaml -o OUT.svg --expand   target < 30 s
    python -c "import torch"                                  baseline: torch start-up

interleaved round by round after one untimed warm-up round. Where `diagram` is not yet
registered with the main CLI, the command runs through its own parser (the same code path:
`dlspec.diagram.command.run`). Then one in-process run of each, split into phases: load +
shape inference, layout (Diagram and graphviz source) and `dot` rendering.

Usage: python benchmarks/diagram_speed.py [--runs 5] [--spec specs/resnet152.yaml]
Reports only; the exit code is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"folded": 5.0, "expanded": 30.0}

# the `diagram` sub-command through its own parser, for a CLI that does not list it yet
HARNESS = ("import argparse, sys; from dlspec.diagram.command import add_parser; "
           "p = argparse.ArgumentParser(); add_parser(p.add_subparsers()); "
           "a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))")


def diagram_command() -> list[str]:
    """`python -m dlspec` when it knows `diagram`, else the harness above."""
    usage = subprocess.run([sys.executable, "-m", "dlspec", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout
    if "diagram" in usage:
        return [sys.executable, "-m", "dlspec"]
    return [sys.executable, "-c", HARNESS]


def timed(argv: list[str]) -> float:
    """Wall time of a command run to completion (its failure is reported, not raised)."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(f"  ! {' '.join(argv[-4:])} exited {result.returncode}: "
              f"{result.stderr.strip()[-300:]}")
    return seconds


def phases(spec: str, expand: bool, out: Path) -> dict[str, float]:
    """One in-process run split into shape inference, layout and rendering."""
    import dlspec
    from dlspec.diagram import DiagramOptions
    from dlspec.diagram.drawing import make_diagram
    from dlspec.diagram.render import RenderOptions, to_digraph, write_files

    start = time.perf_counter()
    shaped = dlspec.shapes(dlspec.load(spec))
    loaded = time.perf_counter()
    diagram = make_diagram(shaped, DiagramOptions(expand=expand))
    graph = to_digraph(diagram, RenderOptions())
    source = graph.source
    laid_out = time.perf_counter()
    write_files(graph, out.with_suffix(".dot"), out, "svg")
    rendered = time.perf_counter()
    boxes = sum(1 for n in diagram.nodes() if n.role in ("layer", "group"))
    return {"load + shapes": loaded - start, "layout": laid_out - loaded,
            "dot render": rendered - laid_out, "boxes": boxes, "dot lines": source.count("\n")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--spec", default="specs/resnet152.yaml")
    args = parser.parse_args()
    command = diagram_command()
    via = "python -m dlspec" if command[1] == "-m" else "the command's own parser"
    print(f"drawing {args.spec} ({via}), median of {args.runs} runs after a warm-up round")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        runs: dict[str, list[float]] = {"folded": [], "expanded": [], "import torch": []}
        argvs = {"folded": [*command, "diagram", args.spec, "-o", str(out / "folded.svg")],
                 "expanded": [*command, "diagram", args.spec, "-o", str(out / "expanded.svg"),
                              "--expand"],
                 "import torch": [sys.executable, "-c", "import torch"]}
        for round_number in range(args.runs + 1):
            for name, argv in argvs.items():
                seconds = timed(argv)
                if round_number:  # round 0 warms the file cache up
                    runs[name].append(seconds)
        print(f"\n{'measurement':<34}{'median':>9}{'min':>9}{'max':>9}   target")
        for name, times in runs.items():
            target = TARGETS.get(name)
            verdict = "baseline" if target is None else (
                f"< {target:g} s: {'pass' if statistics.median(times) < target else 'FAIL'}")
            print(f"{'dlspec diagram ' + name if target else name:<34}"
                  f"{statistics.median(times):>8.2f}s{min(times):>8.2f}s{max(times):>8.2f}s"
                  f"   {verdict}")
        print("\nin-process, one run each:")
        for name, expand in (("folded", False), ("expanded", True)):
            split = phases(args.spec, expand, out / f"phases-{name}.svg")
            print(f"  {name:<9} {split['boxes']:>4.0f} boxes, {split['dot lines']:>5.0f} DOT "
                  f"lines: load + shapes {split['load + shapes']:.2f} s, layout "
                  f"{split['layout']:.3f} s, dot render {split['dot render']:.2f} s")


if __name__ == "__main__":
    main()
