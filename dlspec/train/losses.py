"""The `loss` section as a torch.nn loss, checked against the network's output; L1/L2 penalties.

Every supervised loss is PyTorch's own class, built from one table (`_LOSSES`). What each
expects of the model's outputs (per sample; the batch axis comes first):

* cross_entropy: raw logits `(C,)` (softmax is inside the loss), targets class indices;
  for segmentation `(C, H, W)` logits and an `(H, W)` map of class indices.
* binary_cross_entropy: `BCEWithLogitsLoss` — raw logits (no sigmoid layer at the end; the
  sigmoid is inside the loss, which is numerically stabler) and float targets 0./1. shaped
  like the outputs (segmentation: one logit per pixel, `(1, H, W)`).
* nll: log-probabilities (end the network with log_softmax), targets class indices.
* kl_div: log-probabilities, targets probabilities (or log-probabilities with `log_target`).
* mse, l1, smooth_l1, huber: values, targets shaped like the outputs.

Metric-learning losses (contrastive, cosine_embedding, triplet) compare the embeddings `(D,)` of
two or three samples, not an output with its target: they train `task: metric_learning`
(`dlspec.train.metric_learning` draws the partners and calls them), and only it; that task
refuses the losses above.

GAN objectives (minimax, hinge, wasserstein, ...) are not mapped here: they train `task: gan`
specs in `dlspec.train.gan` (objectives in `gan_objectives`); asking for one in a supervised
run is a SpecError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from dlspec.errors import Path, Problem, SpecError
from dlspec.spec.sections import (
    CrossEntropyLoss,
    Loss,
    MseLoss,
    Regularization,
    TaskConfig,
    TripletLoss,
    class_weights,
)
from dlspec.tasks import find_task, task_has, tasks_with_classes

LossFn = Callable[[Tensor, Tensor], Tensor]

_CLASSIFYING = tasks_with_classes()  # targets are class indices (a sample's, or a position's)
_CLASS_INDEX_LOSSES = ("cross_entropy", "nll")
_VALUE_LOSSES = ("mse", "l1", "smooth_l1", "huber")
GAN_LOSSES = frozenset({
    "minimax", "non_saturating", "least_squares", "hinge", "wasserstein", "wasserstein_gp",
    "cyclegan",
})


def _weights(values: list[float] | None) -> Tensor | None:
    return torch.tensor(values, dtype=torch.float32) if values is not None else None


# One builder per supervised loss; the section's field names are PyTorch's.
_LOSSES: dict[str, Callable[[Any], nn.Module]] = {
    "cross_entropy": lambda s: nn.CrossEntropyLoss(
        weight=_weights(class_weights(s)), ignore_index=s.ignore_index, reduction=s.reduction,
        label_smoothing=s.label_smoothing),
    "binary_cross_entropy": lambda s: nn.BCEWithLogitsLoss(
        reduction=s.reduction, pos_weight=_weights(s.pos_weight)),
    "mse": lambda s: nn.MSELoss(reduction=s.reduction),
    "l1": lambda s: nn.L1Loss(reduction=s.reduction),
    "smooth_l1": lambda s: nn.SmoothL1Loss(reduction=s.reduction, beta=s.beta),
    "huber": lambda s: nn.HuberLoss(reduction=s.reduction, delta=s.delta),
    "nll": lambda s: nn.NLLLoss(
        weight=_weights(class_weights(s)), ignore_index=s.ignore_index,
        reduction=s.reduction),
    "kl_div": lambda s: nn.KLDivLoss(reduction=s.reduction, log_target=s.log_target),
}
SUPERVISED_LOSSES = tuple(_LOSSES)

# Losses of embeddings: a pair's (x1, x2, y = 1 same class / -1 not) or a triplet's (anchor,
# positive, negative); contrastive is PyTorch's hinge embedding loss on the pair's L2 distance.
_METRIC_LOSSES: dict[str, Callable[[Any], nn.Module]] = {
    "contrastive": lambda s: nn.HingeEmbeddingLoss(margin=s.margin, reduction=s.reduction),
    "cosine_embedding": lambda s: nn.CosineEmbeddingLoss(margin=s.margin,
                                                         reduction=s.reduction),
    "triplet": lambda s: nn.TripletMarginLoss(margin=s.margin, p=s.p, eps=s.eps, swap=s.swap,
                                              reduction=s.reduction),
}
METRIC_LOSSES = frozenset(_METRIC_LOSSES)
PAIR_LOSSES = frozenset({"contrastive", "cosine_embedding"})  # the rest take triplets


def default_loss(task: TaskConfig | None) -> Loss:
    """The loss a spec without `loss:` trains with: cross_entropy to classify, triplet to
    learn embeddings, mse otherwise."""
    if task is None:
        raise SpecError(Problem(("loss",), "no loss given and no task to choose one from",
                                "add `task: classification` (or regression), or a `loss:`"))
    known = find_task(task.type)
    if known is not None and known.several_networks:
        raise _no_gan(("task",), task.type)
    if known is not None and known.embeds:
        return TripletLoss()
    return CrossEntropyLoss() if task.type in _CLASSIFYING else MseLoss()


def make_loss(loss: Loss | None, task: TaskConfig | None) -> nn.Module:
    """The loss module of the spec's `loss` section, or the task's default when it has none.

    The result is an `nn.Module` called as `loss_fn(outputs, target)`; move it to the
    training device with the model (class weights are buffers).

    Example:
        >>> loss_fn = make_loss(CrossEntropyLoss(label_smoothing=0.1), task)
        >>> loss_fn(torch.randn(8, 10), torch.randint(0, 10, (8,)))  # (B, C), (B,)
        tensor(2.4...)
    """
    section = loss if loss is not None else default_loss(task)
    if section.type in GAN_LOSSES:
        raise _no_gan(("loss",), section.type)
    return (_LOSSES.get(section.type) or _METRIC_LOSSES[section.type])(section)


def check_loss_against_output(loss: Loss | None, task: TaskConfig | None,
                              output_shape: tuple[int, ...]) -> None:
    """SpecError when the loss cannot work on the network's per-sample output shape.

    Catches a cross_entropy (or nll) over a single output unit — softmax over one class is
    always 1, so nothing would ever be learnt — class weights that do not match the output,
    and a loss from the wrong family for the task (class indices vs values).
    """
    section = loss if loss is not None else default_loss(task)
    kind = task.type if task is not None else None
    problems = loss_problems(section, tuple(output_shape), given=loss is not None, task=kind,
                             classifying=kind in _CLASSIFYING, embedding=task_has(kind, "embeds"))
    if problems:
        raise SpecError(problems)


def loss_problems(section: Loss, shape: tuple[int, ...], *, given: bool, task: str | None,
                  classifying: bool, embedding: bool = False,
                  where: Path = ("loss",)) -> list[Problem]:
    """What is wrong with `section` on an output of per-sample `shape` whose targets are
    class indices (`classifying`) or values, or that is an embedding (`embedding`: compared
    with other samples' by a metric-learning loss), as `task` trains it; located at `where`."""
    if section.type in GAN_LOSSES:
        raise _no_gan(where, section.type)
    problems = _shape_problems(section, shape, given, where)
    if task is not None and (embedding or section.type in METRIC_LOSSES):
        problems += _metric_problems(section.type, task, embedding, classifying, where)
    elif task is not None:
        problems += _family_problems(section.type, task, classifying, where)
    return problems


def _shape_problems(section: Any, shape: tuple[int, ...], given: bool,
                    where: Path) -> list[Problem]:
    units = shape[0] if shape else 1  # the class axis follows the batch axis
    name = section.type if given else f"{section.type} (the default for this task)"
    if section.type in _CLASS_INDEX_LOSSES:
        weights = class_weights(section)
        if units == 1:
            return [Problem(where, f"{name} over a single output unit cannot learn: "
                            "softmax over one class is always 1",
                            "use `loss: binary_cross_entropy` for a binary classifier with "
                            "one output, or end the network with 2 units")]
        if weights is not None and len(weights) != units:
            return [Problem((*where, "weight"), f"{len(weights)} class weights for "
                            f"{units} output classes", f"give {units} weights")]
    if section.type == "cosine_embedding" and units == 1:
        return [Problem(where, f"{name} on an embedding of one unit cannot learn: the cosine "
                        "of two numbers is always 1 or -1", "give the embedding several "
                        "units, or use contrastive (a distance)")]
    if section.type == "binary_cross_entropy" and section.pos_weight is not None:
        last = shape[-1] if shape else 1
        if len(section.pos_weight) not in (1, last):
            return [Problem((*where, "pos_weight"), f"{len(section.pos_weight)} positive "
                            f"weights for {last} output units", f"give 1 or {last}")]
    return []


def _family_problems(kind: str, task: str, classifying: bool, where: Path) -> list[Problem]:
    if not classifying and kind in (*_CLASS_INDEX_LOSSES, "binary_cross_entropy"):
        return [Problem(where, f"{kind} is a classification loss, but the task is "
                        f"{task}", "use mse, l1, smooth_l1 or huber")]
    if classifying and kind in _VALUE_LOSSES:
        return [Problem(where, f"{kind} compares values, but the task is {task} "
                        "(targets are class indices)",
                        "use cross_entropy (or binary_cross_entropy with one output unit)")]
    return []


def _metric_problems(kind: str, task: str, embedding: bool, classifying: bool,
                     where: Path) -> list[Problem]:
    """A metric-learning loss for a task that is not metric learning, or the reverse."""
    if embedding and kind not in METRIC_LOSSES:
        return [Problem(where, f"{kind} compares an output with its target, but task {task} "
                        "learns embeddings by comparing samples with each other",
                        "use triplet (the default), contrastive or cosine_embedding")]
    if not embedding and kind in METRIC_LOSSES:
        usual = ("cross_entropy (or binary_cross_entropy with one output unit)" if classifying
                 else "mse, l1, smooth_l1 or huber")
        return [Problem(where, f"{kind} is a metric-learning loss: it compares the embeddings "
                        f"of two or three samples, not an output with its target, but the task "
                        f"is {task}", f"use task: metric_learning to learn embeddings, or "
                        f"{usual}")]
    return []


def _no_gan(path: Path, name: str) -> SpecError:
    return SpecError(Problem(path, f"{name} is a GAN objective, not a supervised loss: it "
                             "trains a generator against a discriminator (task: gan)",
                             "use task: gan with networks generator and discriminator, or a "
                             "supervised loss (cross_entropy, mse, ...)"))


def regularization_penalty(model: nn.Module, reg: Regularization | None) -> Tensor | None:
    """λ1·Σ|w| + λ2·Σw² over the trainable weights (parameters of 2 or more dims), or None.

    Biases and normalisation scales (1-dim) are left out, as is usual; unlike the
    optimizer's weight_decay this is part of the loss, so it shows in the logged loss and
    its gradient passes through adaptive optimizers' scaling.
    """
    if reg is None or (reg.l1 == 0 and reg.l2 == 0):
        return None
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    if not weights:
        return None
    penalty = torch.zeros((), device=weights[0].device, dtype=weights[0].dtype)
    if reg.l1:
        penalty = penalty + reg.l1 * sum(w.abs().sum() for w in weights)
    if reg.l2:
        penalty = penalty + reg.l2 * sum(w.square().sum() for w in weights)
    return penalty
