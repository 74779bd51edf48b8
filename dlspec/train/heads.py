"""The heads of a supervised network: each output that has targets, with its loss, its share
of the total loss and its metrics.

A network with one output has one head, trained as the spec's task says, and its numbers keep
their plain names (`val_loss`, `val_accuracy`). A network with several outputs has a head per
output that the data gives targets for; each is trained as the task its targets call for
(class indices: classification, a class a step: token classification, a class a pixel:
segmentation, values: regression), its loss is `loss.<output>` (or that task's default) times
its `weight`, and its numbers are named after it (`val_price_loss`, `val_category_accuracy`)
beside the weighted total `val_loss`. Outputs without targets (an autoencoder's bottleneck
`features`) have no head: they are computed, exported and predicted, not trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from dlspec.data import DataSplits
from dlspec.errors import Problem, SpecError
from dlspec.spec.model import Spec
from dlspec.spec.sections import Loss, Regularization, SupervisedLossBase, TaskConfig
from dlspec.tasks import get_task
from dlspec.train.losses import default_loss, loss_problems, make_loss
from dlspec.train.metrics import CLASS_METRICS, METRICS, VALUE_METRICS, Tally, compute_metrics

if TYPE_CHECKING:
    from dlspec.graph import ShapedGraph
    from dlspec.tasks.supervised import SupervisedTask


@dataclass
class Head:
    """One trained output."""

    output: str
    task: SupervisedTask  # how targets meet this output, and which metrics suit it
    section: Loss  # the loss as the spec gives it (or the task's default)
    loss: nn.Module
    weight: float
    metrics: list[str]
    prefix: str  # "" for a network's one head, "<output>_" among several
    threshold: float | None = None  # task.threshold: a binary classifier's decision

    @property
    def binary(self) -> bool:
        """Whether the loss is binary cross-entropy: targets are 0./1. like the logits."""
        return self.section.type == "binary_cross_entropy"

    @property
    def sum_reduced(self) -> bool:
        """Whether the loss sums (rather than averages) over samples."""
        return getattr(self.loss, "reduction", "mean") == "sum"

    def __call__(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """This head's loss on a batch (unweighted)."""
        return self.loss(*self.task.align(outputs, target, self.binary))

    def scores(self, outputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """This head's metrics over a whole split, named with its prefix."""
        return self.named(compute_metrics(self.metrics, *self.task.scored(outputs, target)))

    def tally(self) -> Tally:
        """A fresh tally of this head's metrics, to `add` a split to batch by batch."""
        return Tally(self.metrics, self.threshold)

    def add(self, tally: Tally, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch's outputs and targets to `tally`, as the task scores them."""
        tally.update(*self.task.scored(outputs.detach(), target))

    def named(self, values: dict[str, float]) -> dict[str, float]:
        """Metric values named with this head's prefix (`price_mae` among several)."""
        return {self.prefix + name: value for name, value in values.items()}


def make_heads(task: SupervisedTask, spec: Spec, shaped: ShapedGraph,
               data: DataSplits) -> list[Head]:
    """The heads of the network: SpecError for a loss or metric that cannot train an output."""
    shapes = {name: tuple(info.shape) for name, info in shaped.outputs().items()}
    check_metrics_by_output(spec, list(shapes))
    trained = [name for name in shapes if name in data.train.targets]
    losses = _losses_by_output(spec, list(shapes), trained)
    several = len(trained) > 1
    heads, problems = [], []
    for name in trained:
        own = _task_of(data, name) if several else task
        found, head = _head(spec, own, name, shapes[name], losses.get(name), several)
        problems += found
        heads.append(head)
    if several and isinstance(spec.train.metrics, list):
        used = {name for head in heads for name in head.metrics}
        problems += [Problem(("train", "metrics", i), f"{name} suits none of the outputs "
                             f"{', '.join(trained)}", "list metrics per output: metrics: "
                             "{output: [...]}")
                     for i, name in enumerate(spec.train.metrics) if name not in used]
    if problems:
        raise SpecError(problems)
    return heads


def _head(spec: Spec, task: SupervisedTask, output: str, shape: tuple[int, ...],
          given: Loss | None, several: bool) -> tuple[list[Problem], Head]:
    """The head of one output, and what is wrong with its loss or metrics."""
    section = given if given is not None else default_loss(_config(spec, task, several))
    where = ("loss", output) if isinstance(spec.loss, dict) else ("loss",)
    problems = loss_problems(section, shape, given=given is not None,
                             task=f"{task.name} (output {output})" if several else task.name,
                             classifying=task.classifies or task.classifies_positions,
                             embedding=task.embeds, where=where)
    share = section.weight if isinstance(section, SupervisedLossBase) else None
    if not several and isinstance(share, float | int):
        problems.append(Problem((*where, "weight"), "a number `weight` shares the loss among "
                                "several outputs, but this network trains one",
                                "remove it" + (" (a list would weight the classes)"
                                               if task.classifies or task.classifies_positions
                                               else "")))
    metrics, wrong = _metrics(spec, task, output, several)
    weight = section.share if isinstance(section, SupervisedLossBase) else 1.0
    loss = make_loss(section, None) if not problems else nn.Identity()
    threshold = (spec.task.threshold if spec.task is not None and task.classifies
                 and not several else None)
    return problems + wrong, Head(output, task, section, loss, weight, metrics,
                                  f"{output}_" if several else "", threshold)


def _losses_by_output(spec: Spec, outputs: list[str], trained: list[str]) -> dict[str, Loss]:
    """The spec's loss per trained output: a mapping by output name, or one loss for the one
    output that has targets."""
    loss = spec.loss
    if loss is None:
        return {}
    if isinstance(loss, dict):
        problems = []
        for name in loss:
            if name not in outputs:
                problems.append(Problem(("loss", name), f"the network has no output {name}",
                                        "its outputs are " + ", ".join(outputs)))
            elif name not in trained:
                problems.append(Problem(("loss", name), f"output {name} has no targets in the "
                                        "data, so nothing trains it",
                                        "map targets to it in data.targets, or remove its "
                                        "loss"))
        if problems:
            raise SpecError(problems)
        return dict(loss)
    if len(trained) > 1:
        example = ", ".join(f"{name}: ..." for name in trained)
        raise SpecError(Problem(("loss",), f"one loss for {len(trained)} trained outputs "
                                f"({', '.join(trained)})",
                                f"give a loss per output: loss: {{{example}}}"))
    return {trained[0]: loss} if trained else {}


def _task_of(data: DataSplits, output: str) -> SupervisedTask:
    """The task that trains an output of several, by what its targets are."""
    from dlspec.tasks.supervised import SupervisedTask

    if data.target_classes.get(output) is None:
        name = "regression"
    else:
        positions = data.train.targets[output].ndim - 1
        name = ("classification", "token_classification", "segmentation")[min(positions, 2)]
    found = get_task(name)
    assert isinstance(found, SupervisedTask)
    return found


def _config(spec: Spec, task: SupervisedTask, several: bool) -> TaskConfig:
    """The task config the default loss is chosen by: the spec's, or the output's own."""
    return TaskConfig(type=task.name) if several or spec.task is None else spec.task


def _metrics(spec: Spec, task: SupervisedTask, output: str,
             several: bool) -> tuple[list[str], list[Problem]]:
    """An output's metrics: its list, or those of the spec's list that suit it, or its task's
    defaults."""
    given = spec.train.metrics
    if isinstance(given, dict):
        names = given.get(output)
        if names is None:
            return list(task.default_metrics), []
        wrong = [Problem(("train", "metrics", output, i), f"{name} is not a metric of output "
                         f"{output} ({task.name})",
                         "use " + ", ".join(n for n in _suiting(task)))
                 for i, name in enumerate(names) if name not in _suiting(task)]
        return list(names), wrong
    if given is None:
        return list(task.default_metrics), []
    if not several:
        return list(given), []
    return [name for name in given if name in _suiting(task)], []


def _suiting(task: SupervisedTask) -> list[str]:
    """The metrics that mean something for outputs `task` trains."""
    other = VALUE_METRICS if task.classifies or task.classifies_positions else CLASS_METRICS
    return [name for name in METRICS if task.suits(name) and name not in other]


def check_metrics_by_output(spec: Spec, outputs: list[str]) -> None:
    """SpecError for `train.metrics` keyed by a name that is no output."""
    given = spec.train.metrics
    if not isinstance(given, dict):
        return
    wrong = [Problem(("train", "metrics", name), f"the network has no output {name}",
                     "its outputs are " + ", ".join(outputs))
             for name in given if name not in outputs]
    if wrong:
        raise SpecError(wrong)


def regularizations(spec: Spec) -> list[Regularization]:
    """Every regularization the spec's losses ask for (each adds its penalty once)."""
    loss = spec.loss
    sections = list(loss.values()) if isinstance(loss, dict) else [loss] if loss else []
    return [s.regularization for s in sections if s.regularization is not None]
