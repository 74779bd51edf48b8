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
    from dlspec.spec.model import Spec
    from dlspec.train.engine import TrainResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `train` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("train", help="train the network on the spec's data")
    add_training_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train here, or launch --nproc workers that do; say how the run ended."""
    import dlspec

    spec = dlspec.load(args.spec, args.variant, args.overrides)
    if launches_workers(args):
        dlspec.shapes(spec)  # spec errors once, before any worker starts
        refuse_workers_for_gans(spec, args)
        run_dir = _run_folder(args, spec.name)
        with _held(run_dir, args):
            return launch_workers(args, run_dir)  # every worker trains into this folder
    result = _train(args, spec)
    if not other_worker():
        done = "already trained" if result.fit.already_done else "trained"
        print(f"{done} {result.run_dir}: " + test_line(result))
    return 0


def _run_folder(args: argparse.Namespace, name: str) -> Path:
    """--out, or the folder chosen for it (runs/<name>, or runs/<name>-2 ...), said now."""
    from dlspec.train.runfolder import choose_run_folder

    run_dir, moved = choose_run_folder(args.out, name, resume=args.resume,
                                       overwrite=args.overwrite)
    if moved is not None and not other_worker():
        print(f"note: {moved}", file=sys.stderr)
    return run_dir


@contextmanager
def _held(run_dir: Path, args: argparse.Namespace) -> Iterator[None]:
    """Hold the run folder while the workers write it (see dlspec.train.runfolder)."""
    from dlspec.train.runfolder import claimed

    with claimed(run_dir, resume=args.resume, overwrite=args.overwrite) as note:
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        yield


def _train(args: argparse.Namespace, spec: Spec) -> TrainResult:
    """Train in this process with a progress display; print what the run found or changed."""
    import dlspec
    from dlspec.progress import progress_for

    run_dir = _run_folder(args, spec.name)
    progress = None if other_worker() else progress_for()
    try:
        result = dlspec.train_spec(spec, run_dir, epochs=args.epochs, device=args.device,
                                   resume=args.resume, overwrite=args.overwrite,
                                   callbacks=progress, command=["dlspec", *args.argv])
    finally:
        if progress is not None:
            progress.close()
    if not other_worker():
        if result.transfer is not None:
            print(result.transfer.lines()[0], file=sys.stderr)
        for note in result.fit.notes:  # what a resume found or changed, a lock taken over
            print(f"note: {note}", file=sys.stderr)
    return result
