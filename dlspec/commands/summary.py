"""`dlspec summary`: a table of layers, shapes and parameters."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlspec.commands.args import (
    add_network_argument,
    add_override_argument,
    add_variant_argument,
)
from dlspec.commands.common import pick


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `summary` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("summary", help="table of layers, shapes and parameters")
    parser.add_argument("spec", type=Path)
    add_variant_argument(parser)
    add_override_argument(parser)
    add_network_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print each chosen network's table."""
    import dlspec
    from dlspec.summary import render_summary

    spec = dlspec.load(args.spec, args.variant, args.overrides)
    shaped = pick(dlspec.shapes(spec, count_macs=True), args.network, spec.name)
    for name, graph in shaped.items():
        render_summary(graph, title=name)
    return 0
