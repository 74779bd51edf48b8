"""`dlspec code`: the compiled model as standalone PyTorch source."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlspec.commands.args import (
    add_network_argument,
    add_override_argument,
    add_variant_argument,
)
from dlspec.commands.common import emit, pick, usage


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `code` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("code", help="print the model as standalone PyTorch source")
    parser.add_argument("spec", type=Path)
    add_variant_argument(parser)
    add_override_argument(parser)
    add_network_argument(parser)
    parser.add_argument("-o", "--output", type=Path, help="write to this file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write) one network's source."""
    import dlspec
    from dlspec.codegen import generate_code

    spec = dlspec.load(args.spec, args.variant, args.overrides)
    shaped = pick(dlspec.shapes(spec), args.network, spec.name)
    if len(shaped) > 1:
        raise usage(f"spec {spec.name} has several networks ({', '.join(shaped)}); "
                    "choose one with --network")
    source = generate_code(next(iter(shaped.values())), str(args.spec))
    emit(source, args.output)
    return 0
