"""What a checkpoint was trained with, and what `--resume` may change of it.

A checkpoint records the resolved spec sections that shape training (inputs, networks,
blocks, task, loss, optimizer, schedule, data, augment, transfer, train) and each
schedule's plan (its schedulers' settings when built, which include lengths that follow
`train.epochs`). On `--resume` the spec must say the same, except for:

* `train.epochs` (or `--epochs`): a longer run continues the checkpoint, when the schedule
  does not depend on the length (a cosine schedule over `train.epochs` does; a step
  schedule does not);
* `train.checkpoint_every`, `train.checkpoint_steps` and `train.device`: how often to
  save, where to compute;
* `train.num_workers` and `data.cache`: how the data is read (the batches are the same).

Any other difference is refused (FileError, exit 2) naming the fields: a changed optimizer
or learning rate cannot act on state saved for another, and applying it silently would end
a run that matches neither spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dlspec.errors import FileError, Problem

CHANGEABLE = ("train.epochs", "train.checkpoint_every", "train.checkpoint_steps",
              "train.device", "train.num_workers", "data.cache")
_NOT_TRAINING = ("dlspec", "name", "description", "export", "variants")
_PLAN = "schedule plan"
_SHOWN = 6


def trained_with(spec: Any, epochs: int, schedules: Mapping[str, Any]) -> dict[str, str]:
    """The spec's training settings as flat `path: value` pairs (values as JSON text)."""
    data = spec.model_dump(mode="json", by_alias=True)
    for key in _NOT_TRAINING:
        data.pop(key, None)
    data.setdefault("train", {})["epochs"] = epochs
    data["train"].pop("log", None)  # loggers hear a run, they do not change it
    flat: dict[str, str] = {}
    _flatten(data, "", flat)
    for name, schedule in schedules.items():
        key = _PLAN if len(schedules) == 1 else f"{_PLAN} of {name}"
        flat[key] = json.dumps(schedule.state_dict(), sort_keys=True, default=repr)
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True)


def check_same_training(recorded: object, now: dict[str, str], folder: Path) -> list[str]:
    """Refuse a resume whose spec differs from the checkpoint's in more than CHANGEABLE;
    return a line for each change that is applied (e.g. train.epochs 4 → 8)."""
    if not isinstance(recorded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
        raise FileError(Problem((), f"{folder}: the checkpoint does not record what it was "
                                "trained with (an older dlspec wrote it?), so it cannot be "
                                "resumed safely", _NEW_RUN))
    differ = [key for key in dict.fromkeys([*recorded, *now]) if recorded.get(key) != now.get(key)]
    # a changed type first (it explains the fields that come and go with it), then values
    # both sides set
    refused = sorted((key for key in differ if key not in CHANGEABLE),
                     key=lambda k: (not k.endswith("type"), k not in recorded or k not in now))
    if any(not key.startswith(_PLAN) for key in refused):  # the plan follows from them
        refused = [key for key in refused if not key.startswith(_PLAN)]
    if refused:
        first = refused[0]
        listed = ", ".join(refused[:_SHOWN]) + (f" and {len(refused) - _SHOWN} more"
                                                if len(refused) > _SHOWN else "")
        if first.startswith(_PLAN):
            what = ("the checkpoint was trained with another learning-rate schedule plan"
                    + (" (its length follows train.epochs, which changed)"
                       if "train.epochs" in differ else ""))
        else:
            what = (f"the checkpoint was trained with {first} {_show(recorded.get(first))}; "
                    f"the spec now says {_show(now.get(first))}")
        raise FileError(Problem((), f"{folder}: cannot resume: {what} ({listed} differ"
                                f"{'s' if len(refused) == 1 else ''}); a resumed run may "
                                f"change only {', '.join(CHANGEABLE)}", _NEW_RUN))
    return [f"{key} {_show(recorded.get(key))} → {_show(now.get(key))}" for key in differ]


def _show(value: str | None) -> str:
    if value is None:
        return "(not set)"
    text = value[1:-1] if value.startswith('"') and value.endswith('"') else value
    return text if len(text) <= 60 else text[:60] + "..."


_NEW_RUN = ("train into a new run folder (--out), or start over in this one with "
            "--overwrite")


def resume_hint(run_dir: Path, *, interrupted: bool = False, can_clip: bool = True) -> str:
    """What to do after a run stopped: how to resume, or how to start over."""
    from dlspec.train.checkpoint import MARKER

    if interrupted:
        return (f"the last complete epoch is saved in {run_dir}: continue with "
                "`dlspec train SPEC --resume`" if (run_dir / MARKER).is_file() else
                "no epoch had finished, so nothing was saved")
    # a resume repeats the very steps that diverged: only a new start can change them
    return (f"lower optimizer.lr{' or add train.grad_clip' if can_clip else ''} and train "
            "again with --overwrite, which starts over (--resume would repeat the same steps)")


def restore_or_refuse(restore: Callable[[dict[str, Any]], int], state: dict[str, Any],
                      run_dir: Path) -> int:
    """Run `restore(state)` (a loop's restore); a state that does not fit it is a FileError."""
    from dlspec.train.checkpoint import STATE

    try:
        return restore(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise FileError(Problem((), f"{run_dir / STATE}: it does not hold the state of this "
                                f"run ({why})", "remove the run folder's checkpoint.* files to "
                                "start over")) from None


def check_within(epoch: int, epochs: int, run_dir: Path) -> None:
    """A checkpoint past the run's length cannot be resumed to it."""
    if epoch > epochs:
        raise FileError(Problem((), f"{run_dir}: the checkpoint is at epoch {epoch}, past the "
                                f"{epochs} epochs asked for",
                                f"resume with --epochs {epoch} or more"))


def finished_note(run_dir: Path, epoch: int, reason: str, outputs_written: bool) -> str:
    """What resuming a run that had already finished does."""
    if outputs_written:
        return f"run {run_dir} already finished at epoch {epoch} ({reason}); nothing to resume"
    return (f"run {run_dir} had finished at epoch {epoch} ({reason}) before its outputs were "
            "written: writing them now")


def changed_notes(changes: list[str]) -> list[str]:
    """The lines that say what a resume changed."""
    return [f"resumed with {change}" for change in changes]


def no_checkpoint_note(run_dir: Path) -> str:
    """What --resume does in a folder without a checkpoint."""
    return f"no checkpoint in {run_dir}: training from the first epoch"
