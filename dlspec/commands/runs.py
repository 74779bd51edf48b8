"""`dlspec runs`: the run folders under a folder with their key numbers and status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = ("List the run folders under DIR (default runs/; DIR itself when it is one), "
               "oldest first: spec, status (completed, early-stopped, interrupted, failed, "
               "running), epochs, the best epoch and its monitored value, the main test "
               "metric and the date. A run folder whose files cannot be read is reported "
               "(exit 2) after the others are listed.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `runs` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("runs", help="list run folders with their key numbers",
                                 description=DESCRIPTION)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("runs"), metavar="DIR",
                        help="where the runs are (default runs/)")
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON); exit 2 when a run folder could not be read."""
    from dlspec.errors import FileError
    from dlspec.experiments.runs import list_runs, runs_json, runs_table

    listing = list_runs(args.folder)
    if args.json:
        sys.stdout.write(runs_json(listing.runs))
    elif listing.runs:
        sys.stdout.write(runs_table(listing.runs))
    elif not listing.unreadable:
        print(f"no runs under {args.folder}", file=sys.stderr)
    if listing.unreadable:
        sys.stdout.flush()
        raise FileError([p for _, error in listing.unreadable for p in error.problems])
    return 0
