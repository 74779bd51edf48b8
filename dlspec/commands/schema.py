"""`dlspec schema`: the JSON Schema of the spec format (imports no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dlspec.commands.common import emit


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `schema` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("schema", help="print the JSON Schema of the spec format")
    parser.add_argument("-o", "--output", type=Path, help="write to this file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print (or write) the schema."""
    from dlspec.spec.schema import schema_text

    emit(schema_text(), args.output)
    return 0
