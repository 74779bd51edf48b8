"""The `dlspec diagram` command: draw a spec's network with Graphviz.

`add_parser` registers it with the main CLI; only argparse is imported up front.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlspec.commands.args import add_override_argument, positive_int
from dlspec.errors import Problem, WorkError

DESCRIPTION = (
    "Draw the network from the resolved spec with Graphviz: each layer with its kind, "
    "hyperparameters, output shape and parameter count, coloured by family; blocks and "
    "structures as clusters, a repeat folded into one cluster marked ×N. The .dot source is "
    "always written beside the picture; rendering needs Graphviz's `dot` program.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `diagram` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("diagram", help="draw the architecture (svg, png, pdf, dot)",
                                 description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `diagram`, and `run` as the parser's action."""
    parser.add_argument("spec", type=Path)
    parser.add_argument("--variant", help="draw this variant of the spec (its `variants:`)")
    add_override_argument(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="the picture (default <spec name>.<format>); its .dot source "
                        "is written beside it")
    parser.add_argument("--format", choices=["svg", "png", "pdf", "dot"],
                        help="default: the suffix of -o, else svg")
    parser.add_argument("--rankdir", choices=["TB", "LR"], default="TB",
                        help="top to bottom (default) or left to right")
    parser.add_argument("--depth", type=positive_int, metavar="N",
                        help="draw N levels of blocks; deeper ones become single boxes "
                        "with summed parameters (1: each top-level block is one box)")
    parser.add_argument("--expand", action="store_true",
                        help="draw every copy of a repeat (default: one cluster marked ×N)")
    parser.add_argument("--no-shapes", action="store_true",
                        help="skip shape inference (no torch): no shapes or parameter counts")
    parser.add_argument("--edge-shapes", action="store_true",
                        help="write the tensor shape on every edge")
    parser.add_argument("--no-legend", action="store_true", help="leave out the legend")
    parser.add_argument("--network", help="draw one network of a multi-network spec")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Draw, say what was written; exit 1 when a picture was asked for and `dot` is missing."""
    import dlspec
    from dlspec.diagram.drawing import DiagramOptions, draw

    spec = dlspec.load(args.spec, args.variant, args.overrides)
    options = DiagramOptions(format=args.format, rankdir=args.rankdir, depth=args.depth,
                             expand=args.expand, shapes=not args.no_shapes,
                             edge_shapes=args.edge_shapes, legend=not args.no_legend,
                             network=args.network)
    output = args.output or Path(f"{spec.name}.{args.format or 'svg'}")
    result = draw(spec, output, options)
    print("wrote " + ", ".join(str(p) for p in result.paths) + f" ({result.boxes} boxes)")
    note = result.note()
    if note is None:
        return 0
    if _explicit_picture(args):
        raise WorkError(Problem((), f"cannot render {output}: {note}"))
    print(f"note: {note}", file=sys.stderr)
    return 0


def _explicit_picture(args: argparse.Namespace) -> bool:
    """Whether the user named a rendered format (--format, or -o with its suffix)."""
    if args.format is not None:
        return bool(args.format != "dot")
    return args.output is not None and args.output.suffix.lower() in (".svg", ".png", ".pdf")
