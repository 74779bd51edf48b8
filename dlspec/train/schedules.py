"""The `schedule` section as PyTorch lr schedulers, stepped per epoch or per batch.

Every schedule is PyTorch's own scheduler (`_SCHEDULERS`); lengths in the section (step_size,
milestones, T_max, T_0, step_size_up, ...) count intervals: epochs, or batches for a schedule
stepped per batch (cyclic and one_cycle by default, any with `interval: batch`). Lengths
left out default to the training length (`epochs`, or `epochs × steps_per_epoch`) less any
warm-up, so a cosine reaches eta_min at the end of training.

Warm-up is a `LinearLR` from start_factor × lr to lr, run as the first phase of a
`SequentialLR`; sequential phases are flattened into the same `SequentialLR`, with their
milestones at the phases' ends. `ReduceLROnPlateau` cannot be a phase of `SequentialLR`, so
its warm-up is a separate `LinearLR`, stepped before it, whose factor multiplies its lr.

The training loop calls `step_batch()` after every optimizer step and `step_epoch(metrics)`
after every epoch, whatever the schedule: the `Schedule` knows which of them to act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler as sched

from dlspec.errors import Path, Problem, SpecError
from dlspec.layers.registry import suggest
from dlspec.spec.sections import (
    ConstantSchedule,
    Interval,
    OneCycleSchedule,
    ReduceOnPlateauSchedule,
    SequentialSchedule,
)
from dlspec.spec.sections import (
    Schedule as ScheduleSpec,
)

Scheduler = sched.LRScheduler

# Spec name -> the PyTorch scheduler, given the section, the optimizer and the length (in
# intervals) it runs for.
_SCHEDULERS: dict[str, Callable[[Any, torch.optim.Optimizer, int], Scheduler]] = {
    # factor 1 for no iterations: the lr stays; a real scheduler so warm-up and phases apply
    "constant": lambda s, opt, n: sched.ConstantLR(opt, factor=1.0, total_iters=0),
    "step": lambda s, opt, n: sched.StepLR(opt, s.step_size, gamma=s.gamma),
    "multistep": lambda s, opt, n: sched.MultiStepLR(opt, s.milestones, gamma=s.gamma),
    "exponential": lambda s, opt, n: sched.ExponentialLR(opt, s.gamma),
    "polynomial": lambda s, opt, n: sched.PolynomialLR(
        opt, total_iters=s.total_iters or n, power=s.power),
    "cosine": lambda s, opt, n: sched.CosineAnnealingLR(opt, T_max=s.T_max or n,
                                                        eta_min=s.eta_min),
    "cosine_restarts": lambda s, opt, n: sched.CosineAnnealingWarmRestarts(
        opt, T_0=s.T_0, T_mult=s.T_mult, eta_min=s.eta_min),
    # cycle_momentum off: the spec schedules the learning rate only, and momentum cycling
    # would silently rewrite SGD's momentum / Adam's beta1 (and fails for Adagrad).
    "cyclic": lambda s, opt, n: sched.CyclicLR(
        opt, base_lr=s.base_lr, max_lr=s.max_lr, step_size_up=s.step_size_up,
        step_size_down=s.step_size_down, mode=s.mode, gamma=s.gamma, cycle_momentum=False),
    "one_cycle": lambda s, opt, n: sched.OneCycleLR(
        opt, max_lr=s.max_lr, total_steps=n, pct_start=s.pct_start,
        anneal_strategy=s.anneal_strategy, cycle_momentum=False, div_factor=s.div_factor,
        final_div_factor=s.final_div_factor, three_phase=s.three_phase),
    "reduce_on_plateau": lambda s, opt, n: sched.ReduceLROnPlateau(
        opt, mode=s.mode, factor=s.factor, patience=s.patience, threshold=s.threshold,
        threshold_mode=s.threshold_mode, cooldown=s.cooldown, min_lr=s.min_lr),
}
SCHEDULE_TYPES = (*_SCHEDULERS, "sequential")


@dataclass
class _Part:
    scheduler: Scheduler
    interval: Interval
    metric: str | None = None  # what a ReduceLROnPlateau watches


class Schedule:
    """The learning-rate schedule of one optimizer: torch schedulers stepped when they should.

    Attributes:
        interval: "epoch" or "batch", how the schedule's lengths are counted.
        metric: the metric `step_epoch` needs (reduce_on_plateau), or None.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, parts: list[_Part],
                 interval: Interval, path: Path = ("schedule",)) -> None:
        self.optimizer = optimizer
        self.interval = interval
        self.metric = next((p.metric for p in parts if p.metric is not None), None)
        self._parts = parts
        self._path = path

    @property
    def schedulers(self) -> list[Scheduler]:
        """The torch schedulers, in the order they are stepped."""
        return [part.scheduler for part in self._parts]

    @property
    def lr(self) -> float:
        """The current learning rate of the optimizer's first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step_batch(self) -> None:
        """Step the per-batch schedulers; call after every optimizer step."""
        for part in self._parts:
            if part.interval == "batch":
                _step(part.scheduler)

    def step_epoch(self, metrics: Mapping[str, float] | None = None) -> None:
        """Step the per-epoch schedulers; call after every epoch with its metrics."""
        for part in self._parts:
            if part.interval != "epoch":
                continue
            if isinstance(part.scheduler, sched.ReduceLROnPlateau) and part.metric is not None:
                part.scheduler.step(self._watched(part.metric, metrics or {}))
            else:
                _step(part.scheduler)

    def state_dict(self) -> dict[str, Any]:
        """The schedulers' states (plain values, loadable with `weights_only=True`)."""
        return {"schedulers": [part.scheduler.state_dict() for part in self._parts]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned, from a run of the same schedule."""
        states = state.get("schedulers")
        if not isinstance(states, list) or len(states) != len(self._parts):
            raise SpecError(Problem(self._path, "the checkpoint was saved with a different "
                                    "schedule", "resume with the spec the run started with"))
        for part, part_state in zip(self._parts, states, strict=True):
            part.scheduler.load_state_dict(part_state)

    def _watched(self, metric: str, metrics: Mapping[str, float]) -> float:
        if metric not in metrics:
            known = [k for k in metrics if k not in ("epoch", "lr")]
            hint = suggest(metric, known) or f"metrics computed: {', '.join(known) or 'none'}"
            raise SpecError(Problem((*self._path, "metric"), f"reduce_on_plateau watches "
                                    f"{metric!r}, which the run does not compute", hint))
        return float(metrics[metric])


def _step(scheduler: Scheduler) -> None:
    # OneCycleLR's curve ends at step total_steps - 1; one step more extrapolates the anneal
    # (the lr rises again) and the next raises. Hold the final lr instead.
    if (isinstance(scheduler, sched.OneCycleLR)
            and scheduler.last_epoch >= scheduler.total_steps - 1):
        return
    scheduler.step()


def make_schedule(section: ScheduleSpec | Mapping[str, ScheduleSpec] | None,
                  optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
                  path: Path = ("schedule",)) -> Schedule:
    """The schedule of `optimizer` for a run of `epochs` × `steps_per_epoch` batches.

    No section means a constant learning rate.

    Example:
        >>> schedule = make_schedule(CosineSchedule(), optimizer, epochs=10, steps_per_epoch=50)
        >>> for epoch in range(10):
        ...     for batch in batches:
        ...         ...; optimizer.step(); schedule.step_batch()
        ...     schedule.step_epoch({"val_loss": val_loss})
    """
    if section is None:
        section = ConstantSchedule()
    if isinstance(section, Mapping):
        raise SpecError(Problem(path, "one schedule per network is for specs that train "
                                "several networks together", "give one schedule"))
    interval = _interval(section, path)
    unit = steps_per_epoch if interval == "batch" else 1
    parts: list[_Part] = []
    metric = None
    if isinstance(section, ReduceOnPlateauSchedule):
        metric = section.metric
        if (warmup := section.warmup) is not None:
            # ReduceLROnPlateau cannot join a SequentialLR: warm up beside it, stepped first
            length = warmup.steps or warmup.epochs or 1
            parts.append(_Part(sched.LinearLR(optimizer, warmup.start_factor,
                                              total_iters=length),
                               "batch" if warmup.steps else "epoch"))
            section = section.model_copy(update={"warmup": None})
    elif section.warmup is not None and section.warmup.steps and interval == "epoch":
        raise SpecError(Problem((*path, "warmup", "steps"), f"a warm-up in steps needs a "
                                f"schedule stepped per batch, and {section.type} steps per "
                                "epoch", "give warmup.epochs, or set `interval: batch`"))
    segments = _segments(section, optimizer, epochs * unit, interval, unit, path)
    parts.append(_Part(_chain(optimizer, segments), interval, metric))
    return Schedule(optimizer, parts, interval, path)


def make_schedules(section: ScheduleSpec | Mapping[str, ScheduleSpec] | None,
                   optimizers: Mapping[str, torch.optim.Optimizer], *, epochs: int,
                   steps_per_epoch: int) -> dict[str, Schedule]:
    """One schedule per network: from a mapping network -> schedule, or the same for all.

    A network missing from the mapping keeps a constant learning rate.
    """
    if not isinstance(section, Mapping):
        return {name: make_schedule(section, opt, epochs=epochs, steps_per_epoch=steps_per_epoch)
                for name, opt in optimizers.items()}
    unknown = [Problem(("schedule", name), f"there is no network {name!r}",
                       suggest(name, list(optimizers)) or f"networks: {', '.join(optimizers)}")
               for name in section if name not in optimizers]
    if unknown:
        raise SpecError(unknown)
    return {name: make_schedule(section.get(name), opt, epochs=epochs,
                                steps_per_epoch=steps_per_epoch, path=("schedule", name))
            for name, opt in optimizers.items()}


def _interval(section: ScheduleSpec, path: Path) -> Interval:
    """The interval the whole schedule steps at; the phases of a sequence must agree."""
    if isinstance(section, SequentialSchedule):
        found: list[tuple[int, Interval]] = [
            (i, _interval(phase.schedule, (*path, "phases", i, "schedule")))
            for i, phase in enumerate(section.phases)
            if not isinstance(phase.schedule, ConstantSchedule)
        ]
        for i, interval in found[1:]:
            if interval != found[0][1]:
                raise SpecError(Problem(
                    (*path, "phases", i, "schedule"), f"this phase steps per {interval} but "
                    f"phase {found[0][0]} per {found[0][1]}; a sequence steps at one interval",
                    f"set `interval: {found[0][1]}` on this phase"))
        if found:
            return found[0][1]
    if (isinstance(section, ConstantSchedule | SequentialSchedule)
            and getattr(section, "interval", None) is None):
        # a constant lr steps at no particular interval: follow the warm-up's unit
        return "batch" if section.warmup is not None and section.warmup.steps else "epoch"
    return section.effective_interval


def _segments(section: ScheduleSpec, optimizer: torch.optim.Optimizer, length: int,
              interval: Interval, unit: int, path: Path) -> list[tuple[Scheduler, int]]:
    """The schedulers run one after another, each with its length in intervals."""
    out: list[tuple[Scheduler, int]] = []
    if (warmup := section.warmup) is not None:
        if warmup.steps and interval == "epoch":
            raise SpecError(Problem((*path, "warmup", "steps"), "a warm-up in steps inside a "
                                    "sequence stepped per epoch", "give warmup.epochs"))
        steps = warmup.steps or (warmup.epochs or 0) * unit
        out.append((sched.LinearLR(optimizer, warmup.start_factor, total_iters=steps), steps))
        length = max(length - steps, 1)  # a short run (--epochs 1) still builds
    if not isinstance(section, SequentialSchedule):
        return [*out, (_SCHEDULERS[section.type](section, optimizer, length), length)]
    remaining = length
    for i, phase in enumerate(section.phases):
        where = (*path, "phases", i, "schedule")
        if isinstance(phase.schedule, OneCycleSchedule):
            # OneCycleLR rewrites the groups' initial_lr, which the other phases start from
            raise SpecError(Problem(where, "one_cycle cannot be a phase of a sequence",
                                    "use it as the whole schedule"))
        size = max(phase.epochs * unit if phase.epochs is not None else remaining, 1)
        out += _segments(phase.schedule, optimizer, size, interval, unit, where)
        remaining -= size
    return out


def _chain(optimizer: torch.optim.Optimizer, segments: list[tuple[Scheduler, int]]) -> Scheduler:
    """One scheduler running `segments` in turn (a SequentialLR when there are several)."""
    if len(segments) == 1:
        return segments[0][0]
    milestones, end = [], 0
    for _, size in segments[:-1]:
        end += size
        milestones.append(end)
    return sched.SequentialLR(optimizer, [s for s, _ in segments], milestones)
