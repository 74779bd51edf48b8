"""The training engine every task shares: seeding, the epoch loop, checkpoints and resume,
interruption, the NaN guard, progress and the run folder.

A task (dlspec/tasks/) starts a `Session`: its networks, optimisers, schedules and the steps
of one epoch. The engine drives it, as Lightning's Trainer drives a LightningModule:

    task.start(Run) ─▶ Session ─fit─▶ FitResult ─write─▶ the run folder

Each epoch the engine asks the session to train (`train_epoch`) and to measure
(`measure`), times the epoch, steps the schedules, tracks the best epoch (a session that
`keeps_best`: supervised tasks, by `train.early_stopping`'s metric) or the last one (GANs),
and checkpoints every `train.checkpoint_every` epochs and at the end. The checkpoint holds
what every session has (weights, optimisers, schedules, the weight average, the batch order
and torch's generator, the history) plus what the session adds (`extra_state`), so a
resumed run continues exactly as an uninterrupted one. Library code: it never prints;
progress reaches the caller through `Callbacks`, and the spec's loggers (`train.log`:
TensorBoard, MLflow; dlspec.train.loggers) hear the same events.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from dlspec.errors import Interrupted, Problem, SpecError, WorkError
from dlspec.spec.model import Spec
from dlspec.spec.sections import TrainConfig
from dlspec.train import distributed
from dlspec.train.best import Monitor, snapshot
from dlspec.train.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    mark_outputs_written,
    save_checkpoint,
    writing,
)
from dlspec.train.distributed import Processes
from dlspec.train.loggers import Loggers, require_loggers
from dlspec.train.outputs import write_metrics, write_report
from dlspec.train.record import write_record
from dlspec.train.resume import (
    changed_notes,
    check_same_training,
    check_within,
    finished_note,
    no_checkpoint_note,
    restore_or_refuse,
    resume_hint,
    trained_with,
)

if TYPE_CHECKING:
    from dlspec.data import DataSplits
    from dlspec.export.metadata import DeploymentInfo
    from dlspec.graph import ShapedGraph
    from dlspec.tasks.base import Task
    from dlspec.train.schedules import Schedule
    from dlspec.train.transfer import TransferReport


class Callbacks(Protocol):
    """What the engine tells its caller as training goes (the CLI draws progress bars).

    Pass an object with these three methods as `callbacks=` to `dlspec.train_spec` or
    `dlspec.build_run`; process 0 of a data-parallel run reports for all.
    """

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...

    def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

    def on_epoch_end(self, record: dict[str, float]) -> None: ...


class Silent:
    """Callbacks that report nothing."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...

    def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

    def on_epoch_end(self, record: dict[str, float]) -> None: ...


class Diverged(WorkError):
    """A loss became NaN or infinite: training stops; the kept weights are written."""


@dataclass
class FitResult:
    """The history of a run and where it ended."""

    history: list[dict[str, float]]
    best_epoch: int
    stop_reason: str
    # what a resume changed or found (the CLI prints these lines)
    notes: list[str] = field(default_factory=list)
    # resumed a run whose outputs were all written: nothing was trained or is to be written
    already_done: bool = False
    # the error that stopped training (a NaN loss); the run's outputs are written first
    failure: WorkError | None = None


@dataclass
class TrainResult:
    """A finished run: its folder, history, test numbers and the trained model."""

    run_dir: Path
    fit: FitResult
    test: dict[str, float] | None
    model: nn.Module
    data: DataSplits
    seconds: float
    transfer: TransferReport | None = None
    # what inference needs besides the weights: labels, normalisation, a generator's noise
    info: DeploymentInfo | None = None


@dataclass
class Run:
    """What the engine hands a task to start its session."""

    spec: Spec
    shaped: dict[str, ShapedGraph]  # the spec's networks by name, shapes inferred
    run_dir: Path
    epochs: int
    device: torch.device
    processes: Processes | None  # a data-parallel run's processes (None: one process)

    @property
    def train(self) -> TrainConfig:
        """The spec's `train:` section."""
        return self.spec.train

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the spec start."""
        return base_dir(self.spec)


class Session:
    """A task's live training state: what the engine drives. Tasks subclass it."""

    saved: nn.Module  # the weights a checkpoint keeps
    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, Schedule]
    average: torch.optim.swa_utils.AveragedModel | None = None
    samples: int = 0  # training samples an epoch (samples/s)
    # True: the run ends with its best epoch's weights (by train.early_stopping's metric);
    # False: with its last epoch's
    keeps_best: bool = False
    has_val: bool = False  # whether `measure` reports val_* numbers (the monitor's default)
    # writes checkpoints and outputs: process 0 of a data-parallel run, or the only one
    writes: bool = True
    notes: tuple[str, ...] = ()  # what the session chose that a user should hear of

    def evaluated(self) -> nn.Module:
        """The weights a best epoch keeps: the moving average's, when there is one."""
        return self.average.module if self.average is not None else self.saved

    def kept(self) -> nn.Module:
        """Everything a NaN stop rolls back to the last complete epoch."""
        return nn.ModuleList([self.saved, *([self.average] if self.average else [])])

    def train_epoch(self, epoch: int, epochs: int, order: torch.Generator,
                    callbacks: Callbacks) -> dict[str, float]:
        """One pass over the training data; the epoch's record (losses, learning rates)."""
        raise NotImplementedError

    def measure(self, epoch: int) -> dict[str, float]:
        """Numbers measured after an epoch's training (validation metrics, samples)."""
        return {}

    def test(self) -> dict[str, float] | None:
        """The final numbers on the test split (None: there is none)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint keeps beyond the engine's state."""
        return {}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""

    # True: `epoch_state` and `resume_within` let a checkpoint be taken between batches
    # (train.checkpoint_steps) and resumed from there exactly
    resumes_within_epoch: bool = False

    def epoch_state(self) -> dict[str, Any]:
        """The epoch in progress, after its last batch: what `resume_within` continues
        from. Every process of a data-parallel run calls it (its tallies are summed)."""
        raise NotImplementedError

    def resume_within(self, state: dict[str, Any]) -> None:
        """Continue the next epoch after the batches `state` (from `epoch_state`) counts."""
        raise NotImplementedError

    def write(self, run_dir: Path, result: FitResult, test: dict[str, float] | None) -> None:
        """Write the task's own outputs: weights, curves, pictures, report.md."""
        raise NotImplementedError

    def info(self) -> DeploymentInfo:
        """What inference must repeat of the data preparation (data.json)."""
        raise NotImplementedError

    def trained(self) -> nn.Module:
        """The trained module a TrainResult carries (exported by `dlspec build`)."""
        return self.saved

    def data(self) -> DataSplits:
        """The run's data."""
        raise NotImplementedError

    def transfer(self) -> TransferReport | None:
        """What transfer learning loaded, if anything."""
        return None


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator that orders the batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def seed_weights(train: TrainConfig) -> None:
    """Seed torch before networks are built (the same initial weights for the same seed),
    and switch deterministic algorithms as `train.deterministic` says."""
    torch.manual_seed(train.seed)
    if torch.are_deterministic_algorithms_enabled() != train.deterministic:
        torch.use_deterministic_algorithms(train.deterministic)  # costs ~1 s of imports


def pick_device(name: str) -> torch.device:
    """The torch device `train.device` (or --device) names; auto: CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(Problem(("train", "device"), "device cuda was asked for, but no CUDA "
                                "device is available", "use device: auto or cpu"))
    return torch.device(name)


def base_dir(spec: Spec) -> Path:
    """Where relative paths in the spec start: the spec file's folder."""
    return Path(spec.document.file).parent if spec.document is not None else Path.cwd()


def finite(value: float, epoch: int, batch: int, what: str = "loss") -> float:
    """`value` when it is a number; a NaN or infinite loss stops the run (`Diverged`)."""
    if not math.isfinite(value):
        raise Diverged(Problem((), f"the {what} became {value} at epoch {epoch}, "
                                f"batch {batch}"))
    return value


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The optimiser's current learning rate (of its first parameter group)."""
    return float(optimizer.param_groups[0]["lr"])


# --------------------------------------------------------------------------- the whole run


def train(task: Task, spec: Spec, shaped: dict[str, ShapedGraph], run_dir: Path, *,
          epochs: int | None = None, device: str | None = None, resume: bool = False,
          callbacks: Callbacks | None = None,
          command: Sequence[str] | None = None) -> TrainResult:
    """Train `spec` as `task` says and write its run folder; the TrainResult. `command` is
    the command line environment.json records (default: this process's).

    Example:
        >>> spec = dlspec.load("specs/lenet5.yaml")
        >>> result = train(find_task("classification")(), spec, dlspec.shapes(spec),
        ...                Path("runs/lenet5"))
        >>> result.test["accuracy"] > 0.95
        True
    """
    began = time.perf_counter()
    epochs = epochs or spec.train.epochs
    if distributed.current() is not None and not task.data_parallel:
        raise SpecError(Problem((), f"task {task.name} trains in one process; --nproc is for "
                                "supervised training"))
    require_loggers(spec)  # a logger's missing package: refused before any work
    loggers: Loggers | None = None  # train.log's, heard by the process that writes
    try:
        with distributed.joined(pick_device(device or spec.train.device)) as (processes,
                                                                              target):
            session = task.start(Run(spec, shaped, run_dir, epochs, target, processes))
            if spec.train.checkpoint_steps is not None and not session.resumes_within_epoch:
                raise SpecError(Problem(("train", "checkpoint_steps"), f"task "
                                        f"{task.name} checkpoints at the end of epochs only",
                                        "remove checkpoint_steps; checkpoint_every counts "
                                        "epochs"))
            if not session.writes:
                callbacks = None  # process 0 reports for all
            else:
                loggers = Loggers(spec, run_dir, epochs, callbacks or Silent())
            run_dir.mkdir(parents=True, exist_ok=True)
            settings = trained_with(spec, epochs, session.schedules)  # schedules still fresh
            result = fit(session, spec.train, epochs, run_dir, resume=resume,
                         callbacks=loggers or Silent(), settings=settings)
            # after a NaN stop a best-epoch run has no test numbers; a last-epoch run is
            # measured with its last complete epoch's weights
            measured = result.history and (result.failure is None or not session.keeps_best)
            test = session.test() if measured else None
        if session.writes and not result.already_done and (result.failure is None
                                                           or result.history):
            with writing(run_dir):
                _write_run(session, spec, run_dir, result, test,
                           Record(epochs, device, resume, command))
                if result.failure is None and has_checkpoint(run_dir):
                    mark_outputs_written(run_dir)
    except BaseException as error:  # the loggers end their runs as failed or killed
        if loggers is not None:
            loggers.close(None, error)
        raise
    if loggers is not None:
        loggers.close(test, result.failure)
    if result.failure is not None:
        raise result.failure
    return TrainResult(run_dir, result, test, session.trained(), session.data(),
                       time.perf_counter() - began, session.transfer(), session.info())


@dataclass(frozen=True)
class Record:
    """How a run was started, for its spec.resolved.yaml and environment.json."""

    epochs: int
    device: str | None
    resume: bool
    command: Sequence[str] | None


def _write_run(session: Session, spec: Spec, run_dir: Path, result: FitResult,
               test: dict[str, float] | None, record: Record) -> None:
    session.info().save(run_dir)
    write_metrics(run_dir, result.history, test)
    write_record(run_dir, spec, epochs=record.epochs, device=record.device,
                 resume=record.resume, command=record.command)
    session.write(run_dir, result, test)


def report_table(rows: list[tuple[str, str]]) -> list[str]:
    """report.md's table of the run folder's files: the rows a task gives, framed by the
    rows every run has."""
    return ["| file | what |", "| --- | --- |",
            "| [spec.resolved.yaml](spec.resolved.yaml) | the spec as this run used it, every "
            "default written out |",
            "| [environment.json](environment.json) | versions, device, date and the command "
            "line that made it |",
            *(f"| {name} | {what} |" for name, what in rows),
            "| checkpoint.* | the latest checkpoint, for `--resume` |"]


def write_run_report(run_dir: Path, lines: list[str], rows: list[tuple[str, str]]) -> None:
    """report.md: the task's lines, then the table of files."""
    write_report(run_dir, [*lines, *report_table(rows)])


def stop_lines(result: FitResult, run_dir: Path) -> list[str]:
    """What report.md says of a NaN stop in a run that keeps its last epoch (nothing for a
    run that completed)."""
    if result.failure is None:
        return []
    epoch = int(result.history[-1]["epoch"])
    return [f"The run stopped: {result.failure.problems[0].message}. The weights, samples and "
            f"numbers here are those of epoch {epoch}, the last complete one. To go on, "
            f"{resume_hint(run_dir, can_clip=False)}.", ""]


# --------------------------------------------------------------------------- the epochs


def fit(session: Session, train: TrainConfig, epochs: int, run_dir: Path, *,
        resume: bool = False, callbacks: Callbacks | None = None,
        settings: dict[str, str] | None = None) -> FitResult:
    """Run the session's epochs; checkpoint every `train.checkpoint_every` epochs.

    The networks end with the kept epoch's weights: the best one for a session that
    `keeps_best`, else the last one. `settings` (dlspec.train.resume) is what the run is
    trained with: saved in each checkpoint, compared on resume.
    """
    callbacks = callbacks or Silent()
    loop = _Loop(session, train, epochs, run_dir, settings or {})
    if resume:
        done = loop.resume()
        if done is not None:
            return done
    return loop.run(callbacks)


class _Loop:
    """The state of one run's epochs: history, best or last weights, the batch order."""

    def __init__(self, session: Session, train: TrainConfig, epochs: int, run_dir: Path,
                 settings: dict[str, str]):
        self.session, self.train, self.epochs, self.run_dir = session, train, epochs, run_dir
        self.settings = settings
        self.order = seed_everything(train.seed)
        self.history: list[dict[str, float]] = []
        self.monitor = Monitor(train, has_val=session.has_val) if session.keeps_best else None
        self.best = snapshot(session.evaluated()) if self.monitor else None
        self.saved_best = 0  # the best epoch whose weights the checkpoint holds
        self.last: dict[str, torch.Tensor] | None = None  # last epoch's weights, on the CPU
        self.start = 1
        self.notes: list[str] = list(session.notes)

    def run(self, callbacks: Callbacks) -> FitResult:
        session, train = self.session, self.train
        stop_reason, epoch = "completed", self.start
        try:
            for epoch in range(self.start, self.epochs + 1):
                record = self._epoch(epoch, callbacks)
                self.history.append(record)
                callbacks.on_epoch_end(record)
                stopping = False
                if self.monitor is not None:
                    if self.monitor.improved(record):
                        self.best = snapshot(session.evaluated())
                    stopping = self.monitor.should_stop()
                    if stopping:
                        stop_reason = self.monitor.reason()
                if (epoch % train.checkpoint_every == 0 or epoch == self.epochs or stopping) \
                        and session.writes:
                    finished = stop_reason if stopping or epoch == self.epochs else None
                    self._checkpoint(epoch, finished)
                if self.monitor is None:
                    self.last = _cpu_copy(session.kept())
                if stopping:
                    break
        except KeyboardInterrupt:  # checkpoints are atomic: the last complete one stands
            raise Interrupted(Problem((), f"interrupted during epoch {epoch}",
                                      resume_hint(self.run_dir, interrupted=True))) from None
        except Diverged as failure:
            return self._diverged(failure)
        if self.monitor is not None:
            assert self.best is not None
            session.saved.load_state_dict(self.best)
            return FitResult(self.history, self.monitor.best_epoch or len(self.history),
                             stop_reason, self.notes)
        return FitResult(self.history, len(self.history), stop_reason, self.notes)

    def _epoch(self, epoch: int, callbacks: Callbacks) -> dict[str, float]:
        """One epoch: train, measure, time, step the schedules; the epoch's record."""
        session = self.session
        began = time.perf_counter()
        if self.train.checkpoint_steps is not None:
            callbacks = _Within(callbacks, self, epoch, self.train.checkpoint_steps)
        record = session.train_epoch(epoch, self.epochs, self.order, callbacks)
        record.update(session.measure(epoch))
        record["seconds"] = time.perf_counter() - began
        record["samples_per_second"] = session.samples / max(record["seconds"], 1e-9)
        for schedule in session.schedules.values():
            schedule.step_epoch(record)
        return record

    def checkpoint_within(self, epoch: int) -> None:
        """A checkpoint after a batch of `epoch` (the state of the epoch in progress beside
        that of the last complete one), which `--resume` continues exactly."""
        within = self.session.epoch_state()  # in every process: tallies are summed
        if self.session.writes:
            self._checkpoint(epoch - 1, None, within)

    def _checkpoint(self, epoch: int, finished: str | None,
                    within: dict[str, Any] | None = None) -> None:
        session = self.session
        state = {"epoch": epoch, "history": self.history, "within": within,
                 "optimizers": {k: v.state_dict() for k, v in session.optimizers.items()},
                 "schedules": {k: v.state_dict() for k, v in session.schedules.items()},
                 "batch_order": self.order.get_state(), "torch_rng": torch.get_rng_state(),
                 "average": session.average.state_dict() if session.average else None,
                 "monitor": self.monitor.state() if self.monitor else None,
                 "trained_with": self.settings, "finished": finished,
                 "task": session.extra_state()}
        if self.monitor is None:
            save_checkpoint(self.run_dir, session.saved, state)
            return
        best_epoch = self.monitor.best_epoch
        fresh_best = self.best if best_epoch != self.saved_best else None
        save_checkpoint(self.run_dir, session.saved, state, fresh_best, best_epoch)
        self.saved_best = best_epoch

    def _diverged(self, failure: Diverged) -> FitResult:
        problem = failure.problems[0]
        if self.monitor is not None:
            assert self.best is not None
            self.session.saved.load_state_dict(self.best)
            problem.hint = resume_hint(self.run_dir)
            best_epoch = self.monitor.best_epoch
        else:
            if self.last is not None:
                self.session.kept().load_state_dict(self.last)
                now = (f"{self.run_dir} holds the weights of epoch "
                       f"{int(self.history[-1]['epoch'])}, the last complete one")
            else:
                now = "no epoch had finished, so no weights or outputs were written"
            problem.hint = f"{now}; {resume_hint(self.run_dir, can_clip=False)}"
            best_epoch = len(self.history)
        return FitResult(self.history, best_epoch, "stopped: " + problem.message, self.notes,
                         failure=failure)

    def resume(self) -> FitResult | None:
        """Restore the run folder's checkpoint. A FitResult when the run had already
        finished; None to go on training (from the checkpoint, or from the start)."""
        session, run_dir = self.session, self.run_dir
        checkpoint = load_checkpoint(
            run_dir, session.saved,
            best_like=session.evaluated() if self.monitor else None,
            check_state=lambda state: self.notes.extend(changed_notes(
                check_same_training(state.get("trained_with"), self.settings, run_dir))))
        if checkpoint is None:
            self.notes.append(no_checkpoint_note(run_dir))
            return None
        restore_or_refuse(self._restore, checkpoint.state, run_dir)
        check_within(checkpoint.epoch, self.epochs, run_dir)
        if self.monitor is not None:
            self.best = checkpoint.best or self.best
            self.saved_best = self.monitor.best_epoch
        self.last = _cpu_copy(session.kept())
        self.start = checkpoint.epoch + 1
        finished = checkpoint.state.get("finished")
        if not isinstance(finished, str) or (finished == "completed"
                                             and checkpoint.epoch < self.epochs):
            return None
        if self.monitor is not None:
            assert checkpoint.best is not None  # load_checkpoint read it: best_like was given
            session.saved.load_state_dict(checkpoint.best)
        self.notes.append(finished_note(run_dir, checkpoint.epoch, finished,
                                        checkpoint.outputs_written))
        best_epoch = self.monitor.best_epoch if self.monitor else checkpoint.epoch
        return FitResult(self.history, best_epoch, finished, self.notes,
                         already_done=checkpoint.outputs_written)

    def _restore(self, state: dict[str, Any]) -> int:
        """Restore what `_checkpoint` saved; the epoch it ended (ValueError etc. if not)."""
        session = self.session
        for name, optimizer in session.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
            session.schedules[name].load_state_dict(state["schedules"][name])
        self.order.set_state(state["batch_order"])
        torch.set_rng_state(state["torch_rng"])
        if self.monitor is not None:
            self.monitor.restore(state["monitor"])
        records = state["history"]
        if not isinstance(records, list) or not all(
                isinstance(r, dict) and all(isinstance(v, float | int) for v in r.values())
                for r in records):
            raise ValueError("the history is not a list of records of numbers")
        self.history.extend(records)
        if session.average is not None and state.get("average") is not None:
            session.average.load_state_dict(state["average"])
        session.restore_extra(state["task"])
        if state.get("within") is not None:
            session.resume_within(state["within"])
        return int(state["epoch"])


class _Within:
    """Callbacks that also checkpoint every `steps` batches of an epoch (not after its last
    batch: the epoch's own checkpoint follows)."""

    def __init__(self, callbacks: Callbacks, loop: _Loop, epoch: int, steps: int):
        self.callbacks, self.loop, self.epoch, self.steps = callbacks, loop, epoch, steps
        self.batches = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.batches = batches
        self.callbacks.on_epoch_start(epoch, epochs, batches)

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        self.callbacks.on_batch(batch, loss, samples)
        if batch % self.steps == 0 and batch < self.batches:
            self.loop.checkpoint_within(self.epoch)

    def on_epoch_end(self, record: dict[str, float]) -> None:
        self.callbacks.on_epoch_end(record)


def _cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


__all__ = [
    "Callbacks",
    "Diverged",
    "FitResult",
    "Run",
    "Session",
    "Silent",
    "TrainResult",
    "base_dir",
    "finite",
    "fit",
    "learning_rate",
    "pick_device",
    "seed_everything",
    "seed_weights",
    "train",
]
