"""The epochs of a run that keeps its last weights (task gan, task cyclegan), and its stops.

Each epoch's record goes into the history and to the callbacks, with a checkpoint every
`train.checkpoint_every` epochs and after the last. A loss that becomes NaN or infinite stops
the run as it stops a supervised one (`Diverged`, exit 1), after the run folder gets what a
finished run writes: the networks go back to their weights at the end of the last complete
epoch (kept in memory, on the CPU, at the end of each epoch), and report.md says where
training stopped. A stop in the first epoch writes nothing: no weights are worth keeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlspec.errors import Interrupted, Problem
from dlspec.train.checkpoint import mark_outputs_written, save_checkpoint, writing
from dlspec.train.loop import Callbacks, Diverged, FitResult
from dlspec.train.resume import resume_hint


def run_epochs(epochs: range, one_epoch: Callable[[int], dict[str, Any]],
               history: list[dict[str, float]], samples: int, run_dir: Path, every: int,
               callbacks: Callbacks, saved: nn.Module, state: Callable[[int], dict[str, Any]],
               settings: dict[str, str], kept: nn.Module) -> FitResult:
    """The epochs of an adversarial run: each epoch's record (its `began` time turned into
    seconds and samples/s) into `history` and to the callbacks, a checkpoint of `saved` and
    `state(epoch)` (with the `settings` it was trained with) every `every` epochs and after
    the last; Ctrl-C an `Interrupted` that says how to resume; a NaN loss
    (`Diverged`) a FitResult with the failure, `kept`'s weights those of the last epoch."""
    epoch = epochs.start
    last = _snapshot(kept) if history else None  # resumed: the checkpoint's weights
    try:
        for epoch in epochs:
            record = one_epoch(epoch)
            record["seconds"] = time.perf_counter() - record.pop("began")
            record["samples_per_second"] = samples / max(record["seconds"], 1e-9)
            history.append(record)
            callbacks.on_epoch_end(record)
            if epoch % every == 0 or epoch == epochs.stop - 1:
                save_checkpoint(run_dir, saved, state(epoch) | {"trained_with": settings})
            last = _snapshot(kept)
    except KeyboardInterrupt:
        raise Interrupted(Problem((), f"interrupted during epoch {epoch}",
                                  resume_hint(run_dir, interrupted=True))) from None
    except Diverged as failure:
        problem = failure.problems[0]
        if last is not None:
            kept.load_state_dict(last)
            kept_now = (f"{run_dir} holds the weights of epoch {int(history[-1]['epoch'])}, "
                        "the last complete one")
        else:
            kept_now = "no epoch had finished, so no weights or outputs were written"
        problem.hint = f"{kept_now}; {problem.hint}"
        return FitResult(history, len(history), "stopped: " + problem.message, failure=failure)
    return FitResult(history, len(history), "completed")


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def finite_loss(loss: torch.Tensor, network: str, epoch: int, batch: int, run_dir: Path) -> float:
    """The loss as a number; a NaN or infinite one stops the run (`Diverged`)."""
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(Problem((), f"the {network} loss became {value} at epoch {epoch}, "
                                f"batch {batch}", resume_hint(run_dir, can_clip=False)))
    return value


def write_outputs(run_dir: Path, result: FitResult, write: Callable[[], None]) -> None:
    """Write the run's outputs through `write()` (not for a resumed run that had written
    them, nor for a NaN stop before any epoch finished), then raise what stopped it."""
    if not result.already_done and (result.failure is None or result.history):
        with writing(run_dir):
            write()
            if result.failure is None:
                mark_outputs_written(run_dir)
    if result.failure is not None:
        raise result.failure


def stop_lines(result: FitResult, run_dir: Path) -> list[str]:
    """What report.md says of a NaN stop (nothing for a run that completed)."""
    if result.failure is None:
        return []
    epoch = int(result.history[-1]["epoch"])
    return [f"The run stopped: {result.failure.problems[0].message}. The weights, samples and "
            f"numbers here are those of epoch {epoch}, the last complete one. To go on, "
            f"{resume_hint(run_dir, can_clip=False)}.", ""]
