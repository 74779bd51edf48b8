"""`dlspec train`: train the spec's network(s) into a run folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dlspec.commands.args import add_training_arguments
from dlspec.commands.common import test_line
from dlspec.commands.workers import (
    launch_workers,
    launches_workers,
    other_worker,
    refuse_workers_for_gans,
)

if TYPE_CHECKING:
    from dlspec.train.engine import TrainResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `train` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("train", help="train the network on the spec's data")
    add_training_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's last complete checkpoint")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train here, or launch --nproc workers that do; say how the run ended."""
    if launches_workers(args):
        import dlspec

        # spec errors once, before any worker starts
        spec = dlspec.load(args.spec, args.variant)
        dlspec.shapes(spec)
        refuse_workers_for_gans(spec, args)
        with _held(args.out or Path("runs") / spec.name):
            return launch_workers(args)
    result = _train(args)
    if not other_worker():
        done = "already trained" if result.fit.already_done else "trained"
        print(f"{done} {result.run_dir}: " + test_line(result))
    return 0


@contextmanager
def _held(run_dir: Path) -> Iterator[None]:
    """Hold the run folder while the workers write it (see dlspec.train.runfolder)."""
    from dlspec.train.runfolder import locked

    with locked(run_dir) as note:
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        yield


def _train(args: argparse.Namespace) -> TrainResult:
    """Train in this process with a progress display; print what the run found or changed."""
    import dlspec
    from dlspec.progress import progress_for

    progress = None if other_worker() else progress_for()
    try:
        result = dlspec.train_spec(dlspec.load(args.spec, args.variant), args.out,
                                   epochs=args.epochs, device=args.device, resume=args.resume,
                                   callbacks=progress)
    finally:
        if progress is not None:
            progress.close()
    if not other_worker():
        if result.transfer is not None:
            print(result.transfer.lines()[0], file=sys.stderr)
        for note in result.fit.notes:  # what a resume found or changed, a lock taken over
            print(f"note: {note}", file=sys.stderr)
    return result
