"""`dlspec export`: ONNX file(s), verified in ONNX Runtime against PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlspec.commands.args import (
    add_network_argument,
    add_override_argument,
    add_variant_argument,
    axes,
    positive_int,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `export` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("export", help="export to ONNX, verified in ONNX Runtime")
    parser.add_argument("spec", type=Path)
    add_variant_argument(parser)
    add_override_argument(parser)
    parser.add_argument("--checkpoint", type=Path,
                        help="trained weights: a run folder or its model.safetensors "
                        "(default: freshly initialised weights)")
    parser.add_argument("-o", "--output", type=Path,
                        help="the .onnx file (default <spec name>.onnx, or model.onnx in the "
                        "checkpoint's run folder)")
    add_network_argument(parser)
    parser.add_argument("--opset", type=positive_int, help="override export.onnx.opset")
    parser.add_argument("--dynamic", type=axes, metavar="AXES",
                        help="dynamic axes, e.g. batch or batch,seq (default: batch, and seq "
                        "where an input is a sequence)")
    parser.add_argument("--atol", type=float, help="absolute tolerance of the verification")
    parser.add_argument("--rtol", type=float, help="relative tolerance of the verification")
    parser.add_argument("--optimize", action="store_true", default=None,
                        help="run ONNX Runtime's graph optimisation, then verify again")
    parser.add_argument("--verbose", action="store_true", help="show the exporter's own log")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export, then say what was written and how it verified."""
    import dlspec

    results = dlspec.export_spec(
        dlspec.load(args.spec, args.variant, args.overrides), args.output,
        checkpoint=args.checkpoint, network=args.network,
        opset=args.opset, dynamic=args.dynamic, atol=args.atol, rtol=args.rtol,
        optimize=args.optimize, verbose=args.verbose)
    if args.checkpoint is None:
        print("note: exported with freshly initialised weights (no --checkpoint)",
              file=sys.stderr)
    for result in results:
        print("exported " + "\n".join(result.lines()))
    return 0
