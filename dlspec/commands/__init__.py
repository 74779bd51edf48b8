"""The `dlspec` commands, all registered one way: one module per command.

Each module in `COMMANDS` has `add_parser(commands)`, which adds its sub-parser with `run` as
the parser's action, and `run(args) -> int`, which does the command and returns the exit code
(raising DlspecErrors for `dlspec.cli` to report). Up front a module imports only argparse and
the helpers here, so building the parser costs no command anything; `check --no-shapes`,
`schema` and `predict` never import torch.
"""

from __future__ import annotations

import argparse
import importlib

# in the order `dlspec --help` lists them
COMMANDS = (
    "dlspec.commands.check",
    "dlspec.commands.summary",
    "dlspec.commands.code",
    "dlspec.commands.train",
    "dlspec.commands.build",
    "dlspec.commands.export",
    "dlspec.commands.evaluate",
    "dlspec.commands.runs",
    "dlspec.commands.compare",
    "dlspec.commands.schema",
    "dlspec.commands.kinds",
    "dlspec.runtime.command",  # predict
    "dlspec.diagram.command",
    "dlspec.reference_command",
    "dlspec.commands.completion",
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register every command with the `dlspec` parser's sub-parsers."""
    for name in COMMANDS:
        importlib.import_module(name).add_parser(commands)


def build_parser() -> argparse.ArgumentParser:
    """The `dlspec` parser with every command's sub-parser (the CLI and the completion
    scripts read it)."""
    parser = argparse.ArgumentParser(
        prog="dlspec", description="Declare a neural network in YAML; check, compile, "
        "train and export it.")
    parser.add_argument("--version", action="version", version=_version())
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def _version() -> str:
    from dlspec import __version__

    return f"dlspec {__version__}"
