"""Training progress for people: a rich progress bar on a terminal, one line per epoch in logs."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def _summary(record: dict[str, float]) -> str:
    shown = {k: v for k, v in record.items()
             if k not in ("epoch", "seconds", "samples_per_second")}
    rates = {k: v for k, v in shown.items() if k.startswith("lr/")}
    if rates and len(set(rates.values())) == 1:  # several networks at one rate: said once
        shown = {k: v for k, v in shown.items() if k not in rates} | {
            "lr": next(iter(rates.values()))}
    parts = [f"{k} {v:.3g}" if k.startswith("lr") else f"{k} {v:.4f}"
             for k, v in shown.items()]
    return (", ".join(parts) + f" ({record['seconds']:.1f} s, "
            f"{record['samples_per_second']:,.0f} samples/s)")


class PlainProgress:
    """One line per epoch: what CI logs and pipes want."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.epochs = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epochs = epochs

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        pass

    def on_epoch_end(self, record: dict[str, float]) -> None:
        print(f"epoch {int(record['epoch'])}/{self.epochs}: {_summary(record)}",
              file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to tear down."""


class BarProgress:
    """A rich progress bar per epoch: loss, samples/s and time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                                 TextColumn("{task.fields[rate]} samples/s"),
                                 TimeRemainingColumn(), console=self.console, transient=True)
        self.task: Any = None
        self.started = 0.0
        self.samples = 0
        self.epochs = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epochs = epochs
        if self.task is None:
            self.progress.start()
        else:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("", total=batches, epoch=f"{epoch}/{epochs}",
                                           loss="…", rate="…")
        self.started, self.samples = time.perf_counter(), 0

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        self.samples += samples
        rate = self.samples / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, completed=batch, loss=f"{loss:.4f}", rate=f"{rate:,.0f}")

    def on_epoch_end(self, record: dict[str, float]) -> None:
        self.progress.console.print(f"epoch {int(record['epoch'])}/{self.epochs}: "
                                    f"{_summary(record)}")

    def close(self) -> None:
        """Stop drawing (also on early stopping and errors)."""
        self.progress.stop()


def progress_for(stream: IO[str] | None = None) -> PlainProgress | BarProgress:
    """A progress bar on a terminal, plain lines otherwise."""
    target = stream or sys.stderr
    return BarProgress() if target.isatty() else PlainProgress(target)
