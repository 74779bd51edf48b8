"""A run folder read back without torch: what `dlspec runs` lists and `dlspec compare` shows.

A run folder (dlspec.train) holds `metrics.json` ({"epochs": [record, ...], "test": {...} or
null}), `spec.resolved.yaml`, `checkpoint.complete` (`{"epoch": N, "best_epoch": B,
"outputs": true once the run's outputs are written}`), `report.md` and `.dlspec.lock` (the
holder's note while a run writes the folder; emptied by a clean end). Its status is what
those files tell:

    running        the lock's holder is a live process
    failed         report.md says the run failed or stopped (a NaN loss)
    interrupted    a checkpoint without the outputs (Ctrl-C, a kill): `--resume` continues
    early-stopped  the outputs written, early stopping ended it
    completed      the outputs written, every epoch trained

Everything here is read as untrusted: sizes are capped before reading, JSON and YAML are
checked for the shapes dlspec writes, and anything else is a FileError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlspec import runfiles
from dlspec.errors import FileError, Problem
from dlspec.runfiles import CHECKPOINT_MARKER as MARKER
from dlspec.runfiles import LOCK, REPORT
from dlspec.runfiles import METRICS_JSON as METRICS
from dlspec.runfiles import RESOLVED_SPEC as SPEC
from dlspec.runtime.untrusted import excerpt, printable

RUN_FILES = (*runfiles.RUN_FILES, MARKER)  # a folder holding one of these is a run folder
MAX_METRICS_BYTES = 64 * 2**20  # a million epochs of a dozen numbers; a planted file is not
MAX_SPEC_BYTES = 4 * 2**20
_MAX_SMALL_BYTES = 64 * 2**10  # the marker, the lock note, report.md
MAX_NAME = 60  # characters of a name from a file that a table shows
_HINT = "it is written by `dlspec train`; train the run again, or remove the file"
# numbers a record holds that are not measurements of the model
TIMING = ("epoch", "seconds", "samples_per_second")


@dataclass
class RunRecord:
    """What a run folder says about its run."""

    path: Path
    spec_name: str | None
    spec: dict[str, Any] | None  # spec.resolved.yaml as plain data
    history: list[dict[str, float]]  # metrics.json's epochs
    test: dict[str, float] | None
    status: str
    epochs: int  # trained (metrics.json, else the checkpoint's)
    planned: int | None  # train.epochs of the resolved spec
    monitor: str | None  # the metric the best epoch is chosen by
    best_epoch: int | None
    best_value: float | None
    date: float  # seconds since the epoch: when the run last wrote its numbers
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run folder's name, printable."""
        return shown_name(self.path.name or str(self.path))

    @property
    def seconds(self) -> float | None:
        """Training time: the epochs' seconds added up (None without metrics)."""
        if not self.history:
            return None
        return sum(r.get("seconds", 0.0) for r in self.history)

    def main_test(self) -> tuple[str, float] | None:
        """The test split's main number: its first metric other than a loss."""
        if not self.test:
            return None
        named = [(k, v) for k, v in self.test.items() if not k.endswith("loss")]
        return (named or list(self.test.items()))[0]


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder holding what a run writes."""
    return path.is_dir() and any((path / name).exists() or (path / name).is_symlink()
                                 for name in RUN_FILES)


def read_run(path: Path) -> RunRecord:
    """The run folder at `path` read back; FileError for a folder that is not one, or for a
    file in it that is not what dlspec writes."""
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise FileError(Problem((), f"run folder {printable(str(path))} {what}",
                                "give a folder `dlspec train` wrote, such as runs/NAME"))
    if not is_run_folder(path):
        raise FileError(Problem((), f"{printable(str(path))} is not a run folder: it holds no "
                                f"{', '.join(RUN_FILES)}",
                                "give a folder `dlspec train` wrote, such as runs/NAME"))
    history, test = read_metrics(path / METRICS) if _present(path / METRICS) else ([], None)
    spec = read_spec(path / SPEC) if _present(path / SPEC) else None
    marker = _read_marker(path / MARKER)
    report = _read_small(path / REPORT)
    planned = _planned(spec)
    monitor, best_epoch, best_value = best_of(history, spec)
    epochs = len(history) or int(marker.get("epoch", 0) if marker else 0)
    name = spec.get("name") if spec else None
    return RunRecord(
        path=path, spec_name=shown_name(name) if isinstance(name, str) else None, spec=spec,
        history=history, test=test,
        status=status_of(path, marker, report, len(history), planned), epochs=epochs,
        planned=planned, monitor=monitor, best_epoch=best_epoch, best_value=best_value,
        date=_date(path))


def shown_name(text: str) -> str:
    """A name from a file as a table shows it: escaped, at most MAX_NAME characters."""
    shown = printable(text)
    return shown if len(shown) <= MAX_NAME else shown[:MAX_NAME - 1] + "…"


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def bad_file(path: Path, why: str) -> FileError:
    """The FileError for a run folder's file that is not what dlspec writes."""
    return FileError(Problem((), f"{printable(str(path))}: {why}", _HINT))


def _read_bytes(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them (FileError beyond)."""
    if not path.is_file():
        raise bad_file(path, "it is not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise bad_file(path, f"it cannot be read ({(exc.strerror or str(exc)).lower()})") \
            from None
    if len(data) > limit:
        raise bad_file(path, f"it is larger than the {limit:,} bytes a run's {path.name} "
                       "holds")
    return data


# --------------------------------------------------------------------------- metrics.json


def read_metrics(path: Path) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """metrics.json's epochs and test numbers, checked: every value a finite number, every
    record with its epoch."""
    data = _read_bytes(path, MAX_METRICS_BYTES)
    try:
        content = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise bad_file(path, f"it is not JSON ({_reason(exc)})") from None
    if not isinstance(content, dict):
        raise bad_file(path, f"it holds a JSON {_kind(content)}, not an object "
                       '{"epochs": [...], "test": {...}}')
    epochs = content.get("epochs")
    if not isinstance(epochs, list):
        raise bad_file(path, f'its "epochs" is {_kind(epochs)}, not a list of records')
    history = [_record(path, f"epoch record {i + 1}", record)
               for i, record in enumerate(epochs)]
    for i, record in enumerate(history):
        epoch = record.get("epoch")
        if epoch is None or not epoch.is_integer() or epoch < 1 or (
                i and epoch <= history[i - 1]["epoch"]):
            raise bad_file(path, f"epoch record {i + 1} has the epoch "
                           f"{excerpt(str(epoch))}, not a whole number after the last")
    test = content.get("test")
    return history, (None if test is None else _record(path, '"test"', test))


def _record(path: Path, what: str, record: object) -> dict[str, float]:
    if not isinstance(record, dict):
        raise bad_file(path, f"its {what} is {_kind(record)}, not an object of numbers")
    checked = {}
    for key, value in record.items():
        number = _finite(value)
        if number is None:
            raise bad_file(path, f"its {what} holds {excerpt(str(key))}: "
                           f"{excerpt(repr(value))}, not a finite number")
        checked[key] = number
    return checked


def _finite(value: object) -> float | None:
    """`value` as a float when it is a finite number (not a bool); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            bool: "a boolean"}.get(type(value), "a number")


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return excerpt(text, 100)[1:-1]


# --------------------------------------------------------------------------- the spec


def read_spec(path: Path) -> dict[str, Any]:
    """spec.resolved.yaml as plain data (yaml.safe_load: no tags, no code)."""
    import yaml

    data = _read_bytes(path, MAX_SPEC_BYTES)
    try:
        spec = yaml.safe_load(data.decode("utf-8"))
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        raise bad_file(path, f"it is not YAML ({_reason(exc)})") from None
    if not isinstance(spec, dict):
        raise bad_file(path, f"it holds {_kind(spec)}, not a spec (a mapping)")
    return spec


def _section(spec: dict[str, Any] | None, *keys: str) -> Any:
    value: Any = spec
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _planned(spec: dict[str, Any] | None) -> int | None:
    epochs = _section(spec, "train", "epochs")
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def best_of(history: list[dict[str, float]], spec: dict[str, Any] | None,
            ) -> tuple[str | None, int | None, float | None]:
    """The monitored metric, the best epoch and its value, as training chose them
    (`train.early_stopping`'s metric, mode and min_delta; default val_loss, else
    train_loss)."""
    if not history:
        return None, None, None
    rule = _section(spec, "train", "early_stopping")
    rule = rule if isinstance(rule, dict) else {}
    default = "val_loss" if "val_loss" in history[0] else "train_loss"
    said = rule.get("metric")
    metric: str = said if isinstance(said, str) else default
    maximise = rule.get("mode") == "max"
    delta = _finite(rule.get("min_delta", 0.0)) or 0.0
    best: float | None = None
    epoch = None
    for record in history:
        value = record.get(metric)
        if value is None:
            continue
        if best is None or (value > best + delta if maximise else value < best - delta):
            best, epoch = value, int(record["epoch"])
    return shown_name(metric), epoch, best


# --------------------------------------------------------------------------- status


def status_of(path: Path, marker: dict[str, Any] | None, report: str, epochs: int,
              planned: int | None) -> str:
    """The run's status as its files tell it (see the module's doc)."""
    if holder_alive(path / LOCK):
        return "running"
    if "The run failed" in report or "The run stopped" in report:
        return "failed"
    if marker is not None and marker.get("outputs") is not True:
        return "interrupted"
    if "(early stopping" in report or (planned is not None and 0 < epochs < planned):
        return "early-stopped"
    if marker is None and not epochs:
        return "interrupted"
    return "completed"


def holder_alive(lock: Path) -> bool:
    """Whether the lock's note names a live process (on another host: assumed live).

    The lock itself is never taken here: even a moment's hold could turn away a run
    starting in that moment."""
    note = _read_small(lock)
    if not note.strip():
        return False
    try:
        holder = json.loads(note)
    except (ValueError, RecursionError):
        return False
    if not isinstance(holder, dict):
        return False
    pid, host = holder.get("pid"), holder.get("host")
    if host != socket.gethostname():
        return isinstance(host, str)
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _read_small(path: Path) -> str:
    """A small text file of the run folder ("" when it is missing or not readable text)."""
    if not path.is_file():
        return ""
    try:
        return _read_bytes(path, _MAX_SMALL_BYTES).decode("utf-8", "replace")
    except FileError:
        return ""


def _read_marker(path: Path) -> dict[str, Any] | None:
    """checkpoint.complete's content (None when there is none; {} when it is not JSON: a
    torn or foreign marker still says a checkpoint was begun)."""
    if not _present(path):
        return None
    try:
        marker = json.loads(_read_small(path) or "null")
    except (ValueError, RecursionError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _date(path: Path) -> float:
    """When the run last wrote its numbers: metrics.json's time, else the checkpoint's, else
    the folder's."""
    for name in (METRICS, MARKER):
        with contextlib.suppress(OSError):
            return (path / name).stat().st_mtime
    return path.stat().st_mtime


def format_date(seconds: float) -> str:
    """`2025-01-31 14:05` in local time."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
