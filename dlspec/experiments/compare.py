"""`dlspec compare`: runs side by side — their key numbers, the spec fields that differ, and
their curves overlaid in one picture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlspec.errors import FileError, Problem
from dlspec.experiments.records import MAX_NAME, TIMING, RunRecord, read_run
from dlspec.experiments.runs import number, text_table
from dlspec.runtime.untrusted import printable

MAX_LEAVES = 100_000  # values of one resolved spec walked; more is not a spec
MAX_DEPTH = 64
_ABSENT = "-"  # a field one run's spec does not set (its default)
_VALUE_WIDTH = 40


@dataclass
class Comparison:
    """Runs and what sets them apart."""

    runs: list[RunRecord]
    names: list[str]  # how the table and the picture call each run
    differences: dict[str, list[str]]  # spec field → each run's value, as shown

    def table(self) -> str:
        """The runs' key numbers side by side, then the spec fields that differ."""
        rows = [["status", *(run.status for run in self.runs)],
                ["epochs", *(str(run.epochs) for run in self.runs)],
                ["best epoch", *(str(run.best_epoch or "-") for run in self.runs)]]
        monitors = {run.monitor for run in self.runs if run.monitor}
        if len(monitors) == 1:
            rows.append([f"best {next(iter(monitors))}",
                         *(number(run.best_value) for run in self.runs)])
        else:
            rows.append(["best", *(f"{run.monitor} {number(run.best_value)}" if run.monitor
                                   else "-" for run in self.runs)])
        for key in _union(_measured(run.history[-1]) if run.history else [] for run in self.runs):
            rows.append([f"final {printable(key)}", *(number(run.history[-1].get(key))
                                                      if run.history else "-"
                                                      for run in self.runs)])
        for key in _union(list(run.test or {}) for run in self.runs):
            rows.append([f"test {printable(key)}", *(number((run.test or {}).get(key))
                                                     for run in self.runs)])
        rows.append(["seconds", *(f"{run.seconds:.1f}" if run.seconds is not None else "-"
                                  for run in self.runs)])
        if self.differences:
            rows += [[f"spec {path}", *values] for path, values in self.differences.items()]
        else:
            rows.append(["spec", *(["same"] * len(self.runs))])
        return text_table(["", *self.names], rows)


    def as_json(self) -> str:
        """The comparison as JSON, for scripts: each run's summary (as `dlspec runs --json`
        gives it) with its last epoch's numbers, and the spec fields that differ."""
        from dlspec.experiments.runs import run_summary

        runs = [{**run_summary(run), "label": name,
                 "final": _finite(run.history[-1]) if run.history else None}
                for name, run in zip(self.names, self.runs, strict=True)]
        return json.dumps({"runs": runs, "differences": self.differences}, indent=2) + "\n"


def _finite(record: dict[str, float]) -> dict[str, float | None]:
    """A record for JSON: a NaN or infinity (a diverged epoch) as null."""
    return {k: v if math.isfinite(v) else None for k, v in record.items()}


def compare_runs(paths: Sequence[Path]) -> Comparison:
    """The runs at `paths` read and set side by side.

    Example:
        >>> comparison = compare_runs([Path("runs/lenet5"), Path("runs/lenet5-2")])
        >>> comparison.differences
        {'optimizer.lr': ['0.05', '0.01']}
    """
    if len(paths) < 2:
        raise FileError(Problem((), "compare needs two runs or more",
                                "list them: dlspec compare runs/a runs/b"))
    runs = [read_run(path) for path in paths]
    specs = [_flat(run) for run in runs]
    return Comparison(runs, run_names(runs), spec_differences(specs))


def run_names(runs: Sequence[RunRecord]) -> list[str]:
    """Each run's folder name; where runs share one, as many of the folders above it as
    tell them apart (`a/moons`, `b/moons`)."""
    parts = [run.path.absolute().parts for run in runs]
    names = []
    for own in parts:
        for depth in range(1, len(own) + 1):
            tail = own[-depth:]
            if sum(other[-depth:] == tail for other in parts) == 1 or depth == len(own):
                break
        names.append(_tail(printable("/".join(tail))))
    return names


def _tail(text: str) -> str:
    """The end of a long name, which tells runs apart."""
    return text if len(text) <= MAX_NAME else "…" + text[-(MAX_NAME - 1):]


def spec_differences(specs: Sequence[dict[str, str]]) -> dict[str, list[str]]:
    """The flattened spec fields whose values are not the same in every spec, in the order
    the specs give them; a field a spec does not set shows as `-`."""
    fields = _union(list(spec) for spec in specs)
    return {path: [spec.get(path, _ABSENT) for spec in specs] for path in fields
            if len({spec.get(path, _ABSENT) for spec in specs}) > 1}


def _flat(run: RunRecord) -> dict[str, str]:
    """A run's resolved spec as dotted field paths → values as shown."""
    if run.spec is None:
        return {}
    flat: dict[str, str] = {}
    _walk(run.spec, "", flat, run, 0)
    return flat


def _walk(value: Any, path: str, flat: dict[str, str], run: RunRecord, depth: int) -> None:
    # a YAML file can nest (or alias) its values without end: depth and count are bounded
    if depth > MAX_DEPTH or len(flat) > MAX_LEAVES:
        raise FileError(Problem((), f"{printable(str(run.path / 'spec.resolved.yaml'))}: it "
                                "nests too deep or holds too many values for a spec",
                                "it is written by `dlspec train`; train the run again"))
    if isinstance(value, dict) and value:
        for key, item in value.items():
            name = printable(str(key))
            _walk(item, f"{path}.{name}" if path else name, flat, run, depth + 1)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", flat, run, depth + 1)
    else:
        flat[path] = _shown(value)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = printable(text)
    return text if len(text) <= _VALUE_WIDTH else text[:_VALUE_WIDTH - 1] + "…"


def _measured(record: dict[str, float]) -> list[str]:
    """A record's numbers about the model: losses and metrics, not timing or learning rates."""
    return [k for k in record if k not in TIMING and k != "lr" and not k.startswith(
        ("lr/", "grad_norm/"))]


def _union(lists: Any) -> list[str]:
    """Every key of `lists`, each once, in the order first seen."""
    return list(dict.fromkeys(key for keys in lists for key in keys))


def curve_panels(runs: Sequence[RunRecord]) -> list[str]:
    """The panels the picture draws: loss, then each metric every run measured (its
    validation and training values together)."""
    measured = [{_base(k) for k in _measured(run.history[0])} for run in runs if run.history]
    shared = set.intersection(*measured) if measured else set()
    ordered = _union([_base(k) for k in _measured(run.history[0])] for run in runs
                     if run.history)
    return ["loss", *(k for k in ordered if k in shared and k != "loss")]


def _base(key: str) -> str:
    return key.removeprefix("val_").removeprefix("train_")
