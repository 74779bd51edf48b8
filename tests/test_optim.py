"""Losses, optimizers and lr schedules built from the spec's sections behave as PyTorch's own."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter
from torch import nn

from dlspec.errors import SpecError
from dlspec.spec.sections import (
    Loss,
    Optimizer,
    Regularization,
    Schedule,
    SgdOptimizer,
    TaskConfig,
)
from dlspec.train.losses import (
    GAN_LOSSES,
    METRIC_LOSSES,
    SUPERVISED_LOSSES,
    check_loss_against_output,
    make_loss,
    regularization_penalty,
)
from dlspec.train.optim import OPTIMIZER_TYPES, make_optimizer, make_optimizers
from dlspec.train.schedules import SCHEDULE_TYPES, make_schedule, make_schedules


def tags(union: Any) -> set[str]:
    """The `type` names of an annotated discriminated union's members."""
    members = get_args(get_args(union)[0])
    return {get_args(m.model_fields["type"].annotation)[0] for m in members}


def loss_section(value: Any) -> Any:
    return TypeAdapter(Loss).validate_python(value)


def task(kind: str) -> TaskConfig:
    return TaskConfig(type=kind)  # type: ignore[arg-type]


def problem(error: pytest.ExceptionInfo[SpecError]) -> tuple[Any, str, str]:
    (p,) = error.value.problems
    return p.path, p.message, p.hint or ""


# ------------------------------------------------------------------------------ losses

torch.manual_seed(0)
LOGITS = torch.randn(4, 3)  # (B, C)
CLASSES = torch.tensor([0, 2, 1, 2])
VALUES = torch.randn(4, 2)
TARGET_VALUES = torch.randn(4, 2)
BINARY = torch.tensor([[1.0], [0.0], [1.0], [1.0]])  # (B, 1) float targets of one logit
LOG_PROBS = LOGITS.log_softmax(-1)
PROBS = torch.randn(4, 3).softmax(-1)

# tag -> (section, outputs, target, the same loss computed by torch.nn.functional)
LOSSES: dict[str, tuple[dict[str, Any], torch.Tensor, torch.Tensor, torch.Tensor]] = {
    "cross_entropy": (
        {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5], "ignore_index": 1},
        LOGITS, CLASSES,
        F.cross_entropy(LOGITS, CLASSES, weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=1,
                        label_smoothing=0.1)),
    "binary_cross_entropy": (
        {"pos_weight": 3.0}, LOGITS[:, :1], BINARY,
        F.binary_cross_entropy_with_logits(LOGITS[:, :1], BINARY, pos_weight=torch.tensor([3.]))),
    "mse": ({"reduction": "sum"}, VALUES, TARGET_VALUES,
            F.mse_loss(VALUES, TARGET_VALUES, reduction="sum")),
    "l1": ({}, VALUES, TARGET_VALUES, F.l1_loss(VALUES, TARGET_VALUES)),
    "smooth_l1": ({"beta": 0.5}, VALUES, TARGET_VALUES,
                  F.smooth_l1_loss(VALUES, TARGET_VALUES, beta=0.5)),
    "huber": ({"delta": 0.3}, VALUES, TARGET_VALUES,
              F.huber_loss(VALUES, TARGET_VALUES, delta=0.3)),
    "nll": ({"weight": [1.0, 1.0, 3.0]}, LOG_PROBS, CLASSES,
            F.nll_loss(LOG_PROBS, CLASSES, weight=torch.tensor([1.0, 1.0, 3.0]))),
    "kl_div": ({}, LOG_PROBS, PROBS, F.kl_div(LOG_PROBS, PROBS, reduction="batchmean")),
}


def test_every_loss_is_supervised_with_a_case_or_a_gan_objective() -> None:
    # metric-learning losses are tested in test_metric_learning.py
    assert set(SUPERVISED_LOSSES) == set(LOSSES)
    assert tags(Loss) == set(LOSSES) | GAN_LOSSES | METRIC_LOSSES


@pytest.mark.parametrize("kind", list(LOSSES))
def test_loss_forward_matches_torch(kind: str) -> None:
    settings, outputs, target, expected = LOSSES[kind]
    loss_fn = make_loss(loss_section({"type": kind, **settings}), task("classification"))
    assert isinstance(loss_fn, nn.Module)
    torch.testing.assert_close(loss_fn(outputs, target), expected)


@pytest.mark.parametrize(("kind", "expected"), [
    ("classification", nn.CrossEntropyLoss), ("sequence_classification", nn.CrossEntropyLoss),
    ("regression", nn.MSELoss), ("forecasting", nn.MSELoss),
    ("metric_learning", nn.TripletMarginLoss),
])
def test_default_loss_per_task(kind: str, expected: type[nn.Module]) -> None:
    assert type(make_loss(None, task(kind))) is expected


@pytest.mark.parametrize("kind", sorted(GAN_LOSSES))
def test_gan_objectives_are_not_supervised_losses(kind: str) -> None:
    with pytest.raises(SpecError, match="is a GAN objective, not a supervised loss"):
        make_loss(loss_section(kind), task("gan"))


def test_no_loss_and_no_task_is_an_error() -> None:
    with pytest.raises(SpecError, match="no loss given and no task"):
        make_loss(None, None)


@pytest.mark.parametrize(("loss", "shape"), [("cross_entropy", (1,)), ("nll", ()), (None, (1,))])
def test_cross_entropy_on_one_unit_suggests_binary_cross_entropy(loss: str | None,
                                                                  shape: tuple[int, ...]) -> None:
    section = loss_section(loss) if loss else None
    with pytest.raises(SpecError) as error:
        check_loss_against_output(section, task("classification"), shape)
    path, message, hint = problem(error)
    assert path == ("loss",) and "single output unit" in message
    assert "binary_cross_entropy" in hint
    if loss is None:
        assert "default" in message


@pytest.mark.parametrize(("loss", "kind", "shape", "path", "words"), [
    ({"type": "cross_entropy", "weight": [1, 2]}, "classification", (3,), ("loss", "weight"),
     "2 class weights for 3"),
    ({"type": "binary_cross_entropy", "pos_weight": [1, 2]}, "classification", (1,),
     ("loss", "pos_weight"), "2 positive weights for 1"),
    ("mse", "classification", (3,), ("loss",), "compares values"),
    ("cross_entropy", "regression", (3,), ("loss",), "classification loss"),
])
def test_loss_output_mismatches(loss: Any, kind: str, shape: tuple[int, ...], path: Any,
                                words: str) -> None:
    with pytest.raises(SpecError) as error:
        check_loss_against_output(loss_section(loss), task(kind), shape)
    assert problem(error)[:2][0] == path and words in problem(error)[1]


@pytest.mark.parametrize(("loss", "kind", "shape"), [
    ("cross_entropy", "classification", (10,)), ("binary_cross_entropy", "classification", (1,)),
    ("binary_cross_entropy", "classification", ()), (None, "regression", (1,)),
    ({"type": "binary_cross_entropy", "pos_weight": [1, 2, 3]}, "classification", (3,)),
])
def test_loss_output_fits(loss: Any, kind: str, shape: tuple[int, ...]) -> None:
    check_loss_against_output(loss_section(loss) if loss else None, task(kind), shape)


def test_regularization_penalty_by_hand() -> None:
    first, second = nn.Linear(2, 2), nn.Linear(2, 1)
    model = nn.Sequential(first, nn.LayerNorm(2), second)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        second.weight.copy_(torch.tensor([[3.0, -1.0]]))
    # biases and the LayerNorm's 1-dim scale are not weights: |w| sums to 7.5, w² to 15.25
    penalty = regularization_penalty(model, Regularization(l1=0.1, l2=0.01))
    assert penalty is not None
    torch.testing.assert_close(penalty, torch.tensor(0.1 * 7.5 + 0.01 * 15.25))
    penalty.backward()
    assert first.weight.grad is not None and first.bias.grad is None
    second.weight.requires_grad_(False)  # frozen weights are not penalised
    frozen = regularization_penalty(model, Regularization(l1=1.0))
    torch.testing.assert_close(frozen, torch.tensor(3.5))
    assert regularization_penalty(model, None) is None
    assert regularization_penalty(model, Regularization()) is None


# ------------------------------------------------------------------------------ optimizers


class Tiny(nn.Module):
    """backbone.0.{weight,bias}, backbone.1.{weight,bias}, head.{weight,bias}."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8))
        self.head = nn.Linear(8, 3)


def optimizer_section(value: Any) -> Any:
    return TypeAdapter(Optimizer).validate_python(value)


def groups_of(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, int]:
    """Parameter name -> index of the optimizer group holding it."""
    index = {id(p): i for i, g in enumerate(optimizer.param_groups) for p in g["params"]}
    return {n: index[id(p)] for n, p in model.named_parameters() if id(p) in index}


def test_every_optimizer_type_is_mapped() -> None:
    assert set(OPTIMIZER_TYPES) == tags(Optimizer)


@pytest.mark.parametrize("kind", sorted(tags(Optimizer)))
def test_optimizer_gets_every_setting(kind: str) -> None:
    section = optimizer_section(kind)
    optimizer = make_optimizer(section, Tiny())
    for key, value in section.model_dump(exclude={"type", "param_groups"}).items():
        assert optimizer.defaults[key] == (tuple(value) if isinstance(value, list) else value)


def test_optimizer_settings_reach_torch() -> None:
    sgd = make_optimizer(optimizer_section(
        {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}), Tiny())
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (
        0.05, 0.9, True)
    adam = make_optimizer(optimizer_section({"type": "adamw", "betas": [0.5, 0.99]}), Tiny())
    assert type(adam) is torch.optim.AdamW and adam.defaults["betas"] == (0.5, 0.99)
    default = make_optimizer(None, Tiny())
    assert type(default) is torch.optim.Adam and default.defaults["lr"] == 1e-3


def test_param_groups_by_pattern_first_match_wins() -> None:
    model = Tiny()
    section = SgdOptimizer.model_validate({
        "lr": 0.1, "weight_decay": 0.01, "param_groups": [
            {"layers": ["backbone.0.*"], "lr": 0.01},
            {"layers": ["head", "backbone.*"], "weight_decay": 0.0},
        ]})
    optimizer = make_optimizer(section, model)
    assert groups_of(optimizer, model) == {
        "backbone.0.weight": 1, "backbone.0.bias": 1,
        "backbone.1.weight": 2, "backbone.1.bias": 2, "head.weight": 2, "head.bias": 2,
    }
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01, 0.1]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.01, 0.0]
    assert [g["name"] for g in optimizer.param_groups] == [
        "default", "param_groups[0]", "param_groups[1]"]


def test_param_group_pattern_on_parameter_names() -> None:
    model = Tiny()
    section = SgdOptimizer.model_validate(
        {"param_groups": [{"layers": ["*.bias"], "weight_decay": 0.0}]})
    placed = groups_of(make_optimizer(section, model), model)
    assert placed == {name: int(name.endswith("bias")) for name, _ in model.named_parameters()}


def test_frozen_parameters_are_left_out() -> None:
    model = Tiny()
    model.backbone.requires_grad_(False)
    section = SgdOptimizer.model_validate({"param_groups": [{"layers": ["backbone"]}]})
    optimizer = make_optimizer(section, model)
    assert groups_of(optimizer, model) == {"head.weight": 0, "head.bias": 0}
    assert optimizer.param_groups[1]["params"] == []
    model.head.requires_grad_(False)
    with pytest.raises(SpecError, match="nothing to train"):
        make_optimizer(section, model)


@pytest.mark.parametrize(("pattern", "hint"), [
    ("backbon.*", "did you mean 'backbone.*'?"),
    ("hed", "did you mean 'head'?"),
    ("encoder.*", "layers with parameters: backbone, head"),
])
def test_pattern_matching_nothing_is_an_error(pattern: str, hint: str) -> None:
    section = SgdOptimizer.model_validate(
        {"param_groups": [{"layers": ["head"]}, {"layers": ["backbone.0", pattern]}]})
    with pytest.raises(SpecError) as error:
        make_optimizer(section, Tiny())
    assert problem(error) == (("optimizer", "param_groups", 1, "layers"),
                              f"pattern {pattern!r} matches no parameter", hint)


def test_one_optimizer_per_network() -> None:
    models = {"generator": Tiny(), "discriminator": Tiny()}
    optimizers = make_optimizers({"generator": optimizer_section("adam"),
                                  "discriminator": optimizer_section("sgd")}, models)
    assert type(optimizers["generator"]) is torch.optim.Adam
    assert type(optimizers["discriminator"]) is torch.optim.SGD
    shared = make_optimizers(optimizer_section("rmsprop"), models)
    assert {type(o) for o in shared.values()} == {torch.optim.RMSprop}
    with pytest.raises(SpecError) as error:
        make_optimizers({"generater": optimizer_section("adam"),
                         "discriminator": optimizer_section("adam")}, models)
    messages = [(p.path, p.hint) for p in error.value.problems]
    assert messages == [(("optimizer", "generater"), "did you mean 'generator'?"),
                        (("optimizer",), "add `generator: adam` (or another optimizer)")]
    with pytest.raises(SpecError, match="one optimizer per network"):
        make_optimizer({"generator": optimizer_section("adam")}, Tiny())


# ------------------------------------------------------------------------------ schedules


@dataclass
class Case:
    """A schedule run for `epochs` × `steps` batches from lr 1: the lr at chosen intervals."""

    spec: Any
    expect: dict[int, float]
    epochs: int = 8
    steps: int = 1
    metrics: Callable[[int], dict[str, float]] = field(
        default=lambda epoch: {"val_loss": 1.0})


def cosine(k: int, period: int, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * (1 + math.cos(math.pi * k / period)) / 2


# Indices count epochs (batches for per-batch schedules); index epochs × steps is the lr
# after the last step.
CASES: dict[str, Case] = {
    "constant": Case("constant", {0: 1.0, 8: 1.0}),
    "step": Case({"type": "step", "step_size": 3, "gamma": 0.5},
                 {0: 1.0, 2: 1.0, 3: 0.5, 5: 0.5, 6: 0.25}),
    "multistep": Case({"type": "multistep", "milestones": [2, 5], "gamma": 0.1},
                      {1: 1.0, 2: 0.1, 4: 0.1, 5: 0.01}),
    "exponential": Case({"type": "exponential", "gamma": 0.5}, {0: 1.0, 1: 0.5, 3: 0.125}),
    # total_iters defaults to the epochs: (1 - k/8)²
    "polynomial": Case({"type": "polynomial", "power": 2.0},
                       {0: 1.0, 2: 0.5625, 4: 0.25, 8: 0.0}),
    # T_max defaults to the epochs: half way at 4, eta_min at 8
    "cosine": Case({"type": "cosine", "eta_min": 0.1},
                   {0: 1.0, 2: cosine(2, 8, 0.1), 4: 0.55, 8: 0.1}),
    # cycles of 2 then 4 epochs: restarts at 2 and 6
    "cosine_restarts": Case({"type": "cosine_restarts", "T_0": 2, "T_mult": 2},
                            {0: 1.0, 1: 0.5, 2: 1.0, 3: cosine(1, 4), 4: 0.5, 6: 1.0}),
    "cyclic": Case({"type": "cyclic", "base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2},
                   {0: 0.1, 1: 0.55, 2: 1.0, 3: 0.55, 4: 0.1, 6: 1.0}, epochs=2, steps=4),
    # 10 batches: rises linearly from max_lr/10 to max_lr at batch 4, falls to /100 at 9
    "one_cycle": Case({"type": "one_cycle", "max_lr": 1.0, "pct_start": 0.5, "div_factor": 10.0,
                       "final_div_factor": 100.0, "anneal_strategy": "linear"},
                      {0: 0.1, 2: 0.55, 4: 1.0, 9: 0.001, 10: 0.001}, epochs=2, steps=5),
    # improves for 3 epochs, then stalls: reduced once 3 epochs (> patience 2) do not improve
    "reduce_on_plateau": Case({"type": "reduce_on_plateau", "patience": 2, "factor": 0.5},
                              {0: 1.0, 5: 1.0, 6: 0.5},
                              metrics=lambda epoch: {"val_loss": max(3.0 - epoch, 1.0)}),
    "sequential": Case({"type": "sequential", "phases": [
        {"schedule": "constant", "epochs": 3},
        {"schedule": {"type": "step", "step_size": 1, "gamma": 0.5}},
    ]}, {0: 1.0, 2: 1.0, 3: 1.0, 4: 0.5, 5: 0.25}),
}


def schedule_section(value: Any) -> Any:
    return TypeAdapter(Schedule).validate_python(value)


def run(case: Case, upto: int | None = None, lr: float = 1.0,
        resume: dict[str, Any] | None = None) -> tuple[list[float], dict[str, Any]]:
    """The lr of every interval (plus the one after the last step), and the state at the end."""
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    section = schedule_section(case.spec)
    schedule = make_schedule(section, optimizer, epochs=case.epochs, steps_per_epoch=case.steps)
    start = 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        start = resume["epoch"]
    per_batch = schedule.interval == "batch"
    lrs = []
    for epoch in range(start, case.epochs if upto is None else upto):
        for _ in range(case.steps):
            if per_batch:
                lrs.append(schedule.lr)
            optimizer.step()
            schedule.step_batch()
        if not per_batch:
            lrs.append(schedule.lr)
        schedule.step_epoch(case.metrics(epoch))
    lrs.append(schedule.lr)
    state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "epoch": case.epochs if upto is None else upto}
    return lrs, state


def curve(spec: Any, epochs: int = 8, steps: int = 1) -> list[float]:
    return run(Case(spec, {}, epochs, steps))[0]


def test_every_schedule_type_has_a_case() -> None:
    assert set(CASES) == tags(Schedule) == set(SCHEDULE_TYPES)


@pytest.mark.parametrize("kind", list(CASES))
def test_schedule_follows_pytorch(kind: str) -> None:
    case = CASES[kind]
    lrs, _ = run(case)
    assert len(lrs) == case.epochs * (case.steps if kind in ("cyclic", "one_cycle") else 1) + 1
    for index, lr in case.expect.items():
        assert lrs[index] == pytest.approx(lr, abs=1e-9), (index, lrs)
    if kind == "one_cycle":
        assert max(lrs) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", list(CASES))
def test_schedule_state_round_trip(kind: str) -> None:
    case = CASES[kind]
    whole, _ = run(case)
    half = case.epochs // 2
    first, state = run(case, upto=half)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # as a checkpoint: plain values, loadable weights-only
    buffer.seek(0)
    rest, _ = run(case, resume=torch.load(buffer, weights_only=True))
    assert first[:-1] + rest == pytest.approx(whole)


@pytest.mark.parametrize(("kind", "interval"), [
    ("constant", "epoch"), ("cosine", "epoch"), ("reduce_on_plateau", "epoch"),
    ("cyclic", "batch"), ("one_cycle", "batch"), ("sequential", "epoch"),
])
def test_schedule_interval(kind: str, interval: str) -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    section = schedule_section(CASES[kind].spec)
    assert make_schedule(section, optimizer, epochs=4, steps_per_epoch=2).interval == interval


def test_warmup_rises_from_start_factor_then_runs_the_schedule() -> None:
    # 2 warm-up epochs, then a cosine over the 6 epochs left
    lrs = curve({"type": "cosine", "warmup": {"epochs": 2, "start_factor": 0.1}})
    assert lrs[:3] == pytest.approx([0.1, 0.55, 1.0])
    assert lrs[3:] == pytest.approx([cosine(k, 6) for k in range(1, 7)])


def test_warmup_per_batch() -> None:
    lrs = curve({"type": "cosine", "interval": "batch", "warmup": {"steps": 4}},
                epochs=2, steps=4)
    assert lrs[:5] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])
    assert lrs[8] == pytest.approx(0.0)
    # warm-up epochs count in batches for a per-batch schedule
    epochs = curve({"type": "cosine", "interval": "batch", "warmup": {"epochs": 1}},
                   epochs=2, steps=4)
    assert epochs == pytest.approx(lrs)


def test_constant_with_warmup_steps_steps_per_batch() -> None:
    lrs = curve({"type": "constant", "warmup": {"steps": 2, "start_factor": 0.5}},
                epochs=2, steps=2)
    assert lrs == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0])


def test_reduce_on_plateau_warmup_beside_it() -> None:
    case = Case({"type": "reduce_on_plateau", "patience": 1, "factor": 0.5,
                 "warmup": {"epochs": 2, "start_factor": 0.2}},
                {}, metrics=lambda epoch: {"val_loss": 1.0})
    lrs, _ = run(case)
    # warm-up to 1.0 at epoch 2; the flat metric (the plateau counts the warm-up epochs too)
    # halves the lr after every 2 epochs without improvement (> patience 1)
    assert lrs == pytest.approx([0.2, 0.6, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125])


def test_sequence_with_warmup_and_nested_phases() -> None:
    lrs = curve({"type": "sequential", "warmup": {"epochs": 1, "start_factor": 0.5}, "phases": [
        {"schedule": {"type": "exponential", "gamma": 0.5}, "epochs": 2},
        {"schedule": {"type": "cosine", "warmup": {"epochs": 1}}},
    ]})
    # warm-up 1 epoch, exponential 2, cosine's own warm-up 1, cosine over the 4 left
    assert lrs == pytest.approx([0.5, 1.0, 0.5, 0.1, 1.0, *(cosine(k, 4) for k in range(1, 5))])


def test_step_batch_and_step_epoch_step_only_their_schedules() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    section = schedule_section({"type": "step", "step_size": 1})
    schedule = make_schedule(section, optimizer, epochs=4, steps_per_epoch=10)
    for _ in range(10):
        optimizer.step()
        schedule.step_batch()
    assert schedule.lr == 1.0
    schedule.step_epoch({})
    assert schedule.lr == pytest.approx(0.1)


def test_no_schedule_is_a_constant_lr() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.3)
    schedule = make_schedule(None, optimizer, epochs=3, steps_per_epoch=2)
    assert (schedule.interval, schedule.metric) == ("epoch", None)
    for _ in range(3):
        optimizer.step()
        schedule.step_batch()
        schedule.step_epoch({})
    assert schedule.lr == 0.3


def test_one_cycle_stepped_past_its_end_keeps_its_last_lr() -> None:
    lrs, _ = run(Case({"type": "one_cycle", "max_lr": 1.0}, {}, epochs=1, steps=4))
    assert lrs[-1] == lrs[-2] == pytest.approx(1.0 / 25 / 1e4)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    section = schedule_section({"type": "one_cycle", "max_lr": 1.0})
    schedule = make_schedule(section, optimizer, epochs=1, steps_per_epoch=4)
    for _ in range(6):
        optimizer.step()
        schedule.step_batch()
    assert schedule.lr == pytest.approx(lrs[-2])


def test_plateau_metric_missing_is_an_error() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    section = schedule_section(
        {"type": "reduce_on_plateau", "metric": "val_acuracy", "mode": "max"})
    schedule = make_schedule(section, optimizer, epochs=3, steps_per_epoch=2)
    assert schedule.metric == "val_acuracy"
    with pytest.raises(SpecError) as error:
        schedule.step_epoch({"epoch": 1.0, "val_loss": 0.3, "val_accuracy": 0.9})
    assert problem(error) == (("schedule", "metric"), "reduce_on_plateau watches "
                              "'val_acuracy', which the run does not compute",
                              "did you mean 'val_accuracy'?")


@pytest.mark.parametrize(("spec", "path", "words"), [
    ({"type": "cosine", "warmup": {"steps": 10}}, ("schedule", "warmup", "steps"),
     "needs a schedule stepped per batch"),
    ({"type": "sequential", "phases": [
        {"schedule": {"type": "cyclic", "base_lr": 0.1, "max_lr": 1.0}, "epochs": 1},
        {"schedule": "cosine"}]},
     ("schedule", "phases", 1, "schedule"), "this phase steps per epoch but phase 0 per batch"),
    ({"type": "sequential", "phases": [
        {"schedule": "constant", "epochs": 1},
        {"schedule": {"type": "one_cycle", "max_lr": 1.0}}]},
     ("schedule", "phases", 1, "schedule"), "one_cycle cannot be a phase"),
])
def test_schedules_that_cannot_be_built(spec: Any, path: Any, words: str) -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    section = schedule_section(spec)
    with pytest.raises(SpecError) as error:
        make_schedule(section, optimizer, epochs=4, steps_per_epoch=2)
    assert problem(error)[0] == path and words in problem(error)[1]


def test_one_schedule_per_network() -> None:
    optimizers = {name: torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
                  for name in ("generator", "discriminator")}
    step = schedule_section({"type": "step", "step_size": 1})
    schedules = make_schedules({"generator": step}, optimizers, epochs=2, steps_per_epoch=1)
    for name, optimizer in optimizers.items():
        optimizer.step()
        schedules[name].step_epoch({})
    assert schedules["generator"].lr == pytest.approx(0.1)
    assert schedules["discriminator"].lr == 1.0
    with pytest.raises(SpecError, match="there is no network 'critic'"):
        make_schedules({"critic": step}, optimizers, epochs=2, steps_per_epoch=1)
