"""The best epoch of a supervised run: the monitor that finds it, the weights it had, and the
loop state that a checkpoint saves so that a resumed run keeps both."""

from __future__ import annotations

from typing import Any

import torch

from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import TrainConfig


class Monitor:
    """Tracks the best epoch of the watched metric and decides on early stopping."""

    def __init__(self, train: TrainConfig, has_val: bool):
        rule = train.early_stopping
        default = "val_loss" if has_val else "train_loss"
        self.metric = rule.metric if rule else default
        self.mode = rule.mode if rule else "min"
        self.patience = rule.patience if rule else None
        self.min_delta = rule.min_delta if rule else 0.0
        self.best: float | None = None
        self.best_epoch = 0
        self.waited = 0

    def improved(self, record: dict[str, float]) -> bool:
        """Whether the epoch's record beats the best so far (it becomes the best)."""
        if self.metric not in record:
            known = ", ".join(k for k in record if k not in ("epoch", "seconds"))
            raise SpecError(Problem(("train", "early_stopping", "metric"),
                                    f"no metric {self.metric!r} is measured",
                                    f"choose one of {known}"))
        value = record[self.metric]
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min"
            else value > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.waited = value, int(record["epoch"]), 0
        else:
            self.waited += 1
        return better

    def should_stop(self) -> bool:
        """Whether early stopping ends the run now."""
        return self.patience is not None and self.waited >= self.patience

    def reason(self) -> str:
        """Why early stopping ended the run."""
        return (f"early stopping: {self.metric} did not improve for {self.patience} epochs "
                f"(best {self.best:.4g} at epoch {self.best_epoch})")

    def state(self) -> dict[str, Any]:
        """The monitor's state for a checkpoint."""
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore what `state` returned."""
        best, epoch, waited = state["best"], state["best_epoch"], state["waited"]
        if not (best is None or isinstance(best, float)) or not all(
                isinstance(v, int) and v >= 0 for v in (epoch, waited)):
            raise ValueError("the monitor's state is not numbers")
        self.best, self.best_epoch, self.waited = best, epoch, waited


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's weights, each tensor its own (no sharing)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
