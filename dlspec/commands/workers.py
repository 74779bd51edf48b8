"""Data-parallel training from the command line: `--nproc N` starts N worker processes.

The command a user typed launches the workers (each runs `dlspec train` under torchrun) and
holds the run folder; process 0 speaks for all of them.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from dlspec.commands.common import usage

if TYPE_CHECKING:
    from pathlib import Path

    from dlspec.spec.model import Spec

# how long a failing worker other than process 0 waits to be stopped by the launcher
WORKER_REPORT_WAIT_S = 30.0


class WorkersFailed(Exception):
    """The worker processes ended with a non-zero exit code; they have said why."""

    def __init__(self, code: int):
        super().__init__(f"the workers exited with {code}")
        self.code = code


def launches_workers(args: argparse.Namespace) -> bool:
    """--nproc N in the command a user typed (workers, started by it, train themselves)."""
    return bool(args.nproc > 1 and not data_parallel_worker())


def refuse_workers_for_gans(spec: Spec, args: argparse.Namespace) -> None:
    """SpecError (exit 2) for --nproc with a task that trains in one process (the task's
    `data_parallel`, which the engine also enforces; here it is said before launching)."""
    from dlspec.tasks import get_task

    if spec.task is not None and not get_task(spec.task.type).data_parallel:
        raise usage(f"{args.spec}: task {spec.task.type} trains in one process; --nproc is "
                    "for supervised training")


def launch_workers(args: argparse.Namespace, run_dir: Path) -> int:
    """Run the command's training as `dlspec train` in --nproc workers, all into `run_dir`
    (the folder this process chose and holds); their exit code."""
    from dlspec.train.distributed import launch
    from dlspec.train.runfolder import LAUNCHER_HOLDS

    argv = list(args.argv)
    argv[argv.index(args.command)] = "train"  # build's other steps stay in this process
    os.environ[LAUNCHER_HOLDS] = "1"  # the workers inherit it: this process claimed the folder
    try:
        # the last --out wins: a worker never chooses a folder of its own (runs/<name>-2 ...)
        return launch([*argv, "--out", str(run_dir)], args.nproc)
    finally:
        del os.environ[LAUNCHER_HOLDS]


def data_parallel_worker() -> bool:
    """Whether this process is one of the workers `--nproc` started."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def other_worker() -> bool:
    """Whether this is a data-parallel worker other than process 0, which speaks for all."""
    return data_parallel_worker() and os.environ.get("RANK", "0") != "0"


def wait_for_process_zero() -> None:
    """Give process 0 the time to report a failure all workers share."""
    # Data-parallel workers fail alike, and process 0 speaks for all: when it fails, the
    # launcher stops the other workers. Leaving first would let the launcher stop process 0
    # before it has said why, so this worker waits; it speaks for itself only when process
    # 0 did not fail the same way (and is then stopped by the launcher in its turn).
    import time

    time.sleep(WORKER_REPORT_WAIT_S)
