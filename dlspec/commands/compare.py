"""`dlspec compare`: runs side by side, and their curves overlaid in one picture."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = ("Print the runs' key numbers side by side (status, epochs, best epoch and "
               "value, last epoch's losses and metrics, test numbers, seconds) and the fields "
               "of their resolved specs that differ; draw their curves overlaid in one PNG: "
               "loss and each metric every run measured, per epoch, one colour per run.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `compare` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("compare", help="compare runs: table and overlaid curves",
                                 description=DESCRIPTION)
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders")
    parser.add_argument("-o", "--output", type=Path, default=Path("compare.png"),
                        metavar="FILE.png", help="the picture (default compare.png)")
    parser.add_argument("--json", action="store_true",
                        help="print the comparison as JSON, for scripts (the picture is "
                        "still drawn)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the table, draw the picture."""
    from dlspec.errors import FileError, Problem
    from dlspec.experiments.compare import compare_runs, curve_panels
    from dlspec.experiments.plots import draw_comparison

    if args.output.suffix.lower() != ".png":
        raise FileError(Problem((), f"-o {args.output}: the picture is a PNG file",
                                "give a name ending in .png"))
    comparison = compare_runs(args.runs)
    sys.stdout.write(comparison.as_json() if args.json else comparison.table())
    drawn = [run for run in comparison.runs if run.history]
    if not drawn:
        print("no run has per-epoch numbers yet: nothing to draw", file=sys.stderr)
        return 0
    names = [name for name, run in zip(comparison.names, comparison.runs, strict=True)
             if run.history]
    draw_comparison(drawn, names, curve_panels(drawn), args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
