"""`dlspec runs`: the run folders under a folder, one row each, oldest first.

A run folder that cannot be read (a metrics.json that is not JSON, a planted huge file) is
listed as `unreadable` and its problem reported; the others are listed all the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlspec.errors import FileError, Problem
from dlspec.experiments.records import RunRecord, format_date, is_run_folder, read_run
from dlspec.runtime.untrusted import printable

MAX_DEPTH = 3  # runs/NAME, runs/GROUP/NAME, runs/GROUP/SEARCH/TRIAL
MAX_FOLDERS = 20_000  # folders looked at under DIR; more is not a folder of runs


@dataclass
class Listing:
    """The runs under a folder, and the folders that looked like runs but could not be
    read (with why)."""

    runs: list[RunRecord]
    unreadable: list[tuple[Path, FileError]] = field(default_factory=list)


def list_runs(folder: Path) -> Listing:
    """Every run folder under `folder` (itself, when it is one), oldest first.

    Example:
        >>> [run.name for run in list_runs(Path("runs")).runs]
        ['lenet5', 'lenet5-2']
    """
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileError(Problem((), f"{printable(str(folder))} {what}",
                                "give the folder your runs are in (default runs/)"))
    listing = Listing([])
    for path in run_folders(folder):
        try:
            listing.runs.append(read_run(path))
        except FileError as error:
            listing.unreadable.append((path, error))
    listing.runs.sort(key=lambda run: (run.date, str(run.path)))
    return listing


def run_folders(folder: Path) -> list[Path]:
    """The run folders under `folder`, `MAX_DEPTH` levels down at most; hidden folders are
    passed over."""
    if is_run_folder(folder):
        return [folder]
    found: list[Path] = []
    level, seen = [folder], 0
    for _ in range(MAX_DEPTH):
        below: list[Path] = []
        for parent in level:
            try:
                children = sorted(p for p in parent.iterdir()
                                  if not p.name.startswith(".") and p.is_dir())
            except OSError:
                continue
            seen += len(children)
            if seen > MAX_FOLDERS:
                raise FileError(Problem((), f"{printable(str(folder))} holds more than "
                                        f"{MAX_FOLDERS:,} folders; it is not a folder of runs",
                                        "give the folder your runs are in (default runs/)"))
            for child in children:
                (found if is_run_folder(child) else below).append(child)
        level = below
    return found


def number(value: float | None) -> str:
    """A metric as a table shows it: 4 decimals, or 4 significant digits when large."""
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def runs_table(runs: Sequence[RunRecord]) -> str:
    """The runs as a plain text table, one row each."""
    header = ["run", "spec", "status", "epochs", "best", "monitored", "test", "date"]
    rows = []
    for run in runs:
        epochs = (f"{run.epochs}/{run.planned}" if run.planned and run.epochs < run.planned
                  else str(run.epochs))
        test = run.main_test()
        rows.append([
            run.name, run.spec_name or "-", run.status, epochs,
            str(run.best_epoch) if run.best_epoch is not None else "-",
            f"{run.monitor} {number(run.best_value)}" if run.monitor else "-",
            f"{printable(test[0])} {number(test[1])}" if test else "-",
            format_date(run.date)])
    return text_table(header, rows, right={3, 4})


def runs_json(runs: Sequence[RunRecord]) -> str:
    """The runs as a JSON list of objects, for scripts."""
    return json.dumps([run_summary(run) for run in runs], indent=2) + "\n"


def run_summary(run: RunRecord) -> dict[str, Any]:
    """One run's key facts as plain data."""
    return {"name": run.path.name, "path": str(run.path), "spec": run.spec_name,
            "status": run.status, "epochs": run.epochs, "planned_epochs": run.planned,
            "best_epoch": run.best_epoch, "monitor": run.monitor,
            "best_value": run.best_value, "test": run.test, "seconds": run.seconds,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.date))}


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               right: set[int] | None = None) -> str:
    """Rows as plain aligned text under their header; columns in `right` right-aligned."""
    right = right or set()
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
                         ).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)]) + "\n"
