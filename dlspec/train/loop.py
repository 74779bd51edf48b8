"""The supervised training loop: batches from in-memory tensors, evaluation, early stopping.

Library code: it never prints. Progress reaches the caller through `Callbacks`, and every
epoch's numbers are returned in the history.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from dlspec.data import DataSplits, TensorSet
from dlspec.data.augment import augment_batch, augment_with_masks
from dlspec.errors import Interrupted, Problem, WorkError
from dlspec.spec.sections import AugmentConfig, TrainConfig
from dlspec.train import distributed
from dlspec.train.best import Monitor, loop_state, restore_loop, snapshot
from dlspec.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dlspec.train.distributed import Processes
from dlspec.train.gradnorms import GradientNorms
from dlspec.train.metrics import CLASSIFICATION_TASKS, compute_metrics
from dlspec.train.resume import (
    changed_notes,
    check_same_training,
    check_within,
    finished_note,
    no_checkpoint_note,
    restore_or_refuse,
    resume_hint,
)


class Callbacks(Protocol):
    """What the loop tells its caller (the CLI draws progress bars from it)."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...

    def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

    def on_epoch_end(self, record: dict[str, float]) -> None: ...


class _Silent:
    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...

    def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

    def on_epoch_end(self, record: dict[str, float]) -> None: ...


@dataclass
class Objective:
    """Everything one optimisation step needs besides the model and the data."""

    loss: Any  # (outputs, target) -> loss tensor
    optimizer: torch.optim.Optimizer
    schedule: Any  # dlspec.train.schedules.Schedule
    regularization: Any = None  # model -> penalty tensor | None
    task_type: str = "classification"
    metrics: list[str] = field(default_factory=list)
    augment: AugmentConfig | None = None  # random changes to training batches
    # input name → the statistics its data was normalised with (augmentation undoes them)
    normalization: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # an exponential moving average of the weights (train.ema): evaluated and saved instead
    average: torch.optim.swa_utils.AveragedModel | None = None

    def evaluated(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module whose weights are evaluated and kept: the average, when there is one."""
        return self.average.module if self.average is not None else model


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


class Diverged(WorkError):
    """The loss became NaN or infinite: training stops; the best weights so far are kept."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator that orders the batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batches(data: TensorSet, batch_size: int,
            order: torch.Generator | None) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """Mini-batches indexed straight out of the tensors: no per-sample Python work."""
    count = len(data)
    index = torch.randperm(count, generator=order) if order is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        chosen = index[start:start + batch_size]
        yield [tensor[chosen] for tensor in data.inputs.values()], data.target[chosen]


def align_target(outputs: torch.Tensor, target: torch.Tensor, task_type: str,
                 loss_is_binary: bool) -> torch.Tensor:
    """Targets shaped as the loss expects: class indices, or values shaped like the outputs."""
    if task_type == "segmentation" and not loss_is_binary:
        return target.long()  # (B, H, W) class maps against (B, C, H, W) logits
    if task_type in CLASSIFICATION_TASKS and not loss_is_binary:
        return target.reshape(-1).long()
    return target.reshape(outputs.shape).to(outputs.dtype)


def evaluate(model: torch.nn.Module, data: TensorSet, objective: Objective, batch_size: int,
             device: torch.device, binary: bool) -> dict[str, float]:
    """Loss and metrics over a whole split, under inference mode."""
    model.eval()
    outputs, total, count = [], 0.0, 0
    with torch.inference_mode():
        for inputs, target in batches(data, batch_size, None):
            out = model(*(x.to(device) for x in inputs))
            aligned = align_target(out, target.to(device), objective.task_type, binary)
            total += objective.loss(out, aligned).item() * len(target)
            count += len(target)
            outputs.append(out.cpu())
    result = {"loss": total / max(count, 1)}
    result.update(compute_metrics(objective.metrics, torch.cat(outputs), data.target))
    return result


def fit(model: torch.nn.Module, data: DataSplits, objective: Objective, train: TrainConfig,
        *, epochs: int, device: torch.device, run_dir: Path, resume: bool = False,
        binary: bool = False, callbacks: Callbacks | None = None,
        processes: Processes | None = None, settings: dict[str, str] | None = None,
        ) -> FitResult:
    """Train `model` in place; checkpoint every `train.checkpoint_every` epochs.

    The model ends with the best epoch's weights. `settings` (dlspec.train.resume) is what
    the run is trained with: saved in each checkpoint, compared on resume. With `processes`
    (a data-parallel run), each process trains on its part of every batch and only process
    0 checkpoints.
    """
    callbacks = callbacks or _Silent()
    settings = settings or {}
    step = _Step(model, objective, train, device, binary, processes)
    order = seed_everything(train.seed)
    history: list[dict[str, float]] = []
    monitor = Monitor(train, has_val=data.val is not None)
    best = snapshot(objective.evaluated(model))
    saved_best = 0  # the best epoch whose weights the checkpoint holds
    start, notes = 1, list[str]()
    if resume:
        resumed = _resume(run_dir, model, objective, order, monitor, history, settings,
                          epochs, notes)
        if isinstance(resumed, FitResult):
            return resumed
        if resumed is not None:
            start, best, saved_best = resumed.epoch + 1, resumed.best or best, monitor.best_epoch
    steps = math.ceil(len(data.train) / train.batch_size)
    stop_reason = "completed"
    epoch = start
    try:
        for epoch in range(start, epochs + 1):
            record = _epoch(step, data, order, epoch, epochs, callbacks, steps)
            history.append(record)
            callbacks.on_epoch_end(record)
            if monitor.improved(record):
                best = snapshot(objective.evaluated(model))
            stopping = monitor.should_stop()
            if stopping:
                stop_reason = monitor.reason()
            if (epoch % train.checkpoint_every == 0 or epoch == epochs or stopping) \
                    and step.writes:
                finished = stop_reason if stopping or epoch == epochs else None
                save_checkpoint(run_dir, model, loop_state(
                    epoch, objective, order, monitor, history, settings, finished),
                    best if monitor.best_epoch != saved_best else None, monitor.best_epoch)
                saved_best = monitor.best_epoch
            if stopping:
                break
    except KeyboardInterrupt:  # checkpoints are atomic: the last complete one stands
        raise Interrupted(Problem((), f"interrupted during epoch {epoch}",
                                  resume_hint(run_dir, interrupted=True))) from None
    except Diverged as failure:
        model.load_state_dict(best)
        failure.problems[0].hint = resume_hint(run_dir)
        return FitResult(history, monitor.best_epoch, "stopped: " + failure.problems[0].message,
                         notes, failure=failure)
    model.load_state_dict(best)
    return FitResult(history, monitor.best_epoch or len(history), stop_reason, notes)


def _resume(run_dir: Path, model: torch.nn.Module, objective: Objective,
            order: torch.Generator, monitor: Monitor, history: list[dict[str, float]],
            settings: dict[str, str], epochs: int, notes: list[str],
            ) -> Checkpoint | FitResult | None:
    """Restore the run folder's checkpoint: the checkpoint to continue from, a FitResult
    when the run had already finished, or None when there is no checkpoint."""
    checkpoint = load_checkpoint(
        run_dir, model, best_like=objective.evaluated(model),
        check_state=lambda state: notes.extend(changed_notes(
            check_same_training(state.get("trained_with"), settings, run_dir))))
    if checkpoint is None:
        notes.append(no_checkpoint_note(run_dir))
        return None
    restore_or_refuse(lambda state: restore_loop(state, objective, order, monitor, history),
                      checkpoint.state, run_dir)
    check_within(checkpoint.epoch, epochs, run_dir)
    finished = checkpoint.state.get("finished")
    if not isinstance(finished, str) or (finished == "completed" and checkpoint.epoch < epochs):
        return checkpoint
    assert checkpoint.best is not None  # load_checkpoint read it: best_like was given
    model.load_state_dict(checkpoint.best)
    notes.append(finished_note(run_dir, checkpoint.epoch, finished, checkpoint.outputs_written))
    return FitResult(history, monitor.best_epoch, finished, notes,
                     already_done=checkpoint.outputs_written)


def _epoch(step: _Step, data: DataSplits, order: torch.Generator, epoch: int, epochs: int,
           callbacks: Callbacks, steps: int) -> dict[str, float]:
    """One epoch: train, evaluate, step the schedule; the epoch's record."""
    objective, train = step.objective, step.train
    callbacks.on_epoch_start(epoch, epochs, steps)
    began = time.perf_counter()
    train_loss, grad_norms = _train_epoch(step, data.train, order, epoch, callbacks)
    record = {"epoch": float(epoch), "train_loss": train_loss,
              "lr": _lr(objective.optimizer), **grad_norms}
    evaluated = objective.evaluated(step.model)
    if step.processes is not None:  # every process then evaluates the same model
        distributed.share_buffers(evaluated)
    splits = {"val": data.val} if data.val is not None else {"train": data.train}
    for prefix, split in splits.items():
        values = evaluate(evaluated, split, objective, train.batch_size, step.device,
                          step.binary)
        record.update({f"{prefix}_{k}": v for k, v in values.items() if
                       not (prefix == "train" and k == "loss")})
    record["seconds"] = time.perf_counter() - began
    record["samples_per_second"] = len(data.train) / max(record["seconds"], 1e-9)
    objective.schedule.step_epoch(record)
    return record


class _Step:
    """One optimisation step on a batch, alone or as one of several data-parallel processes."""

    def __init__(self, model: torch.nn.Module, objective: Objective, train: TrainConfig,
                 device: torch.device, binary: bool, processes: Processes | None):
        self.model, self.objective, self.train = model, objective, train
        self.device, self.binary, self.processes = device, binary, processes
        # the module the forward pass runs through: DDP all-reduces gradients in backward
        self.runner = distributed.wrap(model, device) if processes is not None else model
        self.sum_reduced = getattr(objective.loss, "reduction", "mean") == "sum"

    @property
    def writes(self) -> bool:
        """Whether this process writes checkpoints (process 0, or the only one)."""
        return self.processes is None or self.processes.main

    def part(self, inputs: list[torch.Tensor], target: torch.Tensor,
             ) -> tuple[list[torch.Tensor], torch.Tensor] | None:
        """This process's part of a batch, on its device; None when it gets no sample."""
        if self.processes is not None:
            if len(target) < self.processes.world:  # a last batch too small to share: skipped
                return None
            inputs = [self.processes.shard(x) for x in inputs]
            target = self.processes.shard(target)
        return [x.to(self.device) for x in inputs], target.to(self.device)

    def loss(self, inputs: list[torch.Tensor], target: torch.Tensor,
             batch_size: int) -> torch.Tensor:
        """The batch's loss (with the regularisation penalty) as this process contributes it."""
        objective = self.objective
        with _autocast(self.train, self.device):
            outputs = self.runner(*inputs)
            loss = objective.loss(outputs, align_target(outputs, target, objective.task_type,
                                                        self.binary))
            if self.processes is not None:
                # DDP averages gradients over processes; weighting each part by its share of
                # the batch makes that average the gradient of the whole batch's loss
                world = self.processes.world
                loss = loss * (world if self.sum_reduced else world * len(target) / batch_size)
            penalty = objective.regularization(self.model) if objective.regularization else None
            if penalty is not None:
                loss = loss + penalty
        return loss

    def batch_loss(self, loss: torch.Tensor) -> float:
        """The whole batch's loss, the same in every process."""
        if self.processes is None:
            return loss.item()
        return distributed.sum_across(loss).item() / self.processes.world


def hold_frozen_statistics(model: torch.nn.Module) -> None:
    """Put normalisation layers whose weights are all frozen back in eval mode, so that
    their running statistics stay as loaded too (what Keras does for `trainable=False`)."""
    for module in model.modules():
        if not isinstance(module, torch.nn.modules.batchnorm._NormBase):
            continue
        weights = list(module.parameters(recurse=False))
        if weights and not any(w.requires_grad for w in weights):
            module.eval()


def _train_epoch(step: _Step, data: TensorSet, order: torch.Generator, epoch: int,
                 callbacks: Callbacks) -> tuple[float, dict[str, float]]:
    model, objective, train = step.model, step.objective, step.train
    model.train()
    hold_frozen_statistics(model)
    total, count = 0.0, 0
    norms = GradientNorms(model) if train.log_grad_norms else None
    for batch, (inputs, target) in enumerate(batches(data, train.batch_size, order), start=1):
        if objective.augment is not None:  # drawn from the batch-order generator: resumable
            stats = [objective.normalization.get(name) for name in data.inputs]
            if objective.task_type == "segmentation":  # masks move with their images
                inputs, moved = augment_with_masks(inputs, target, objective.augment, order,
                                                   stats)
                target = moved if moved is not None else target
            else:
                inputs = augment_batch(inputs, objective.augment, order, stats)
        size = len(target)
        part = step.part(inputs, target)
        if part is None:
            continue
        loss = step.loss(*part, batch_size=size)
        value = step.batch_loss(loss)
        if not math.isfinite(value):
            raise Diverged(Problem((), f"the loss became {value} at epoch {epoch}, "
                                   f"batch {batch}"))
        objective.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if norms is not None:
            norms.measure()
        _clip(model, train)
        objective.optimizer.step()
        if objective.average is not None:
            objective.average.update_parameters(model)
        objective.schedule.step_batch()
        total += value * size
        count += size
        callbacks.on_batch(batch, value, size)
    return total / max(count, 1), (norms.means() if norms is not None else {})


def _autocast(train: TrainConfig, device: torch.device) -> AbstractContextManager[Any]:
    if not train.mixed_precision:
        return nullcontext()
    dtype = torch.float16 if train.precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _clip(model: torch.nn.Module, train: TrainConfig) -> None:
    if train.grad_clip is None:
        return
    if train.grad_clip.norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip.norm)
    elif train.grad_clip.value is not None:
        torch.nn.utils.clip_grad_value_(model.parameters(), train.grad_clip.value)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
