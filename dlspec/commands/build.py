"""`dlspec build`: check → train → evaluate → export → diagram into one run folder.

The pipeline is `dlspec.build_run`; this command parses the arguments, calls it, and prints
what its steps say (to stderr, as they finish) and how the run ended.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from dlspec.commands.args import add_training_arguments
from dlspec.commands.common import test_line
from dlspec.commands.workers import (
    WorkersFailed,
    launch_workers,
    launches_workers,
    other_worker,
    refuse_workers_for_gans,
)

if TYPE_CHECKING:
    from pathlib import Path

    from dlspec.spec.model import Spec


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `build` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("build", help="check, train and evaluate into one run folder")
    add_training_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the run; print `built RUN: <test numbers>`."""
    import dlspec
    from dlspec.progress import progress_for

    spec = dlspec.load(args.spec, args.variant, args.overrides)
    progress = None if other_worker() else progress_for()

    def say(line: str) -> None:
        if progress is not None:
            progress.close()  # training's progress display ends before a step speaks
        if not other_worker():
            print(line, file=sys.stderr)

    try:
        result = dlspec.build_run(spec, args.out, epochs=args.epochs, device=args.device,
                                  resume=args.resume, overwrite=args.overwrite,
                                  callbacks=progress, on_note=say,
                                  train_with=_workers(args) if launches_workers(args) else None,
                                  command=["dlspec", *args.argv])
    except WorkersFailed as failed:  # the workers have said why
        return failed.code
    finally:
        if progress is not None:
            progress.close()
    line = test_line(result.train) if result.train is not None else "see report.md"
    print(f"built {result.run_dir}: {line}")
    return 0


def _workers(args: argparse.Namespace) -> Callable[[Spec, Path], None]:
    """Training in --nproc data-parallel workers, each running `dlspec train`."""
    def train(spec: Spec, run_dir: Path) -> None:
        refuse_workers_for_gans(spec, args)
        code = launch_workers(args, run_dir)  # the folder build_run chose, for every worker
        if code != 0:
            raise WorkersFailed(code)

    return train
