"""Epoch metrics as scikit-learn computes them, exact over a whole split.

A `Tally` keeps summable statistics of a split batch by batch — per-class counts for
classes and pixels, per-output sums for values — so a metric is that of the whole split (no
per-batch averaging bias) in memory that does not grow with the split, and a data-parallel
run adds its processes' tallies. `compute_metrics` is one tally over one batch. Definitions
(each compared with `sklearn.metrics` in tests/test_metrics.py):

* `accuracy`: the share of samples whose predicted class (argmax, or `logit > 0` for one
  logit) is the target; `top5_accuracy`: whose target is among the 5 highest logits.
* `precision`, `recall`, `f1` of a binary classifier (one logit, or two classes): of the
  positive class, index 1 — scikit-learn's default `average="binary"`. Of three classes or
  more: the macro average over the classes present in the targets or the predictions —
  `average="macro"` with scikit-learn's default labels. A class never predicted has
  precision 0 (and one never present recall 0): `zero_division=0`.
* `mae`, `mse`: the mean over every value; `rmse`: the mean over outputs of each output's
  root mean squared error; `r2`: the mean over outputs of each one's coefficient of
  determination (`multioutput="uniform_average"`), an output whose targets are constant
  scoring 1.0 when predicted exactly and 0.0 otherwise; NaN for fewer than two samples.
  An output is one value of a sample's (flattened) output.
* `pixel_accuracy`: the share of pixels classified right; `iou`, `dice`: of one binary logit,
  the foreground's (class 1; 0 when neither the masks nor the predictions have any); of
  several classes, the mean over the classes present in the masks or the predictions.
* `knn_accuracy` (metric learning): 1-nearest-neighbour accuracy of embeddings; it needs
  the whole split at once and is computed by the metric-learning session, not tallied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Stats = dict[str, torch.Tensor]  # summable statistics of a split (or of one batch)


def predicted_classes(outputs: torch.Tensor, cut: float = 0.0) -> torch.Tensor:
    """Class indices from logits: argmax, or `logit > cut` for a single output unit (0: the
    probability 0.5; `logit_cut` turns a task's threshold into one)."""
    if outputs.dim() == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(-1) > cut).long()
    return outputs.argmax(dim=-1)


def logit_cut(threshold: float | None) -> float:
    """The logit whose sigmoid is `threshold` (a binary classifier's decision threshold,
    task.threshold; None: 0.5)."""
    return 0.0 if threshold is None else math.log(threshold / (1 - threshold))


def predicted_masks(outputs: torch.Tensor) -> torch.Tensor:
    """Class maps (N, H, W) from segmentation logits (N, C, H, W): argmax over the classes,
    or `logit > 0` for one binary logit per pixel."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0).long()
    return outputs.argmax(dim=1)


# --------------------------------------------------------------------------- statistics


def _counts(predicted: torch.Tensor, actual: torch.Tensor, classes: int) -> Stats:
    """Per class: right predictions, predictions and targets. Counted on the CPU: CUDA's
    bincount refuses deterministic mode."""
    predicted, actual = predicted.reshape(-1).cpu(), actual.reshape(-1).long().cpu()
    return {"right": torch.bincount(actual[predicted == actual], minlength=classes),
            "predicted": torch.bincount(predicted, minlength=classes),
            "actual": torch.bincount(actual, minlength=classes)}


def _class_stats(outputs: torch.Tensor, target: torch.Tensor, cut: float = 0.0) -> Stats:
    classes = max(int(outputs.shape[-1]) if outputs.dim() > 1 else 1, 2)
    return _counts(predicted_classes(outputs, cut), target, classes)


def _top5_stats(outputs: torch.Tensor, target: torch.Tensor) -> Stats:
    top = outputs.topk(min(5, outputs.shape[-1]), dim=-1).indices  # (N, k)
    hits = (top == target.reshape(-1, 1).to(top.device)).any(dim=-1)
    return {"hits": hits.sum().cpu(), "count": torch.tensor(len(hits))}


def _pixel_stats(outputs: torch.Tensor, target: torch.Tensor) -> Stats:
    return _counts(predicted_masks(outputs), target, max(int(outputs.shape[1]), 2))


def _value_stats(outputs: torch.Tensor, target: torch.Tensor) -> Stats:
    """Per output (a flattened value of a sample), in float64: the residuals' sums and the
    targets' first two moments (r2's total sum of squares)."""
    predicted = outputs.reshape(len(outputs), -1).double()  # (N, D)
    actual = target.to(outputs.device).reshape(predicted.shape).double()
    error = predicted - actual
    return {"count": torch.tensor(len(predicted), dtype=torch.float64),
            "absolute": error.abs().sum(0).cpu(), "squared": (error**2).sum(0).cpu(),
            "sum": actual.sum(0).cpu(), "sum_squares": (actual**2).sum(0).cpu()}


_KINDS: dict[str, Callable[[torch.Tensor, torch.Tensor], Stats]] = {
    "classes": _class_stats, "top5": _top5_stats, "pixels": _pixel_stats, "values": _value_stats,
}


def _add(total: Stats, part: Stats) -> None:
    """Add `part` into `total`; per-class counts of different lengths (a target beyond the
    logits) are padded."""
    for key, value in part.items():
        if key not in total:
            total[key] = value.clone()
            continue
        have = total[key]
        if have.dim() == 1 and value.dim() == 1 and len(have) != len(value):
            size = max(len(have), len(value))
            have = torch.nn.functional.pad(have, (0, size - len(have)))
            value = torch.nn.functional.pad(value, (0, size - len(value)))
        total[key] = have + value


# --------------------------------------------------------------------------- metrics


def _share(part: torch.Tensor, whole: torch.Tensor) -> float:
    return float(part) / float(whole) if float(whole) > 0 else 0.0


def _ratios(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator per class, 0 where the denominator is 0 (zero_division=0)."""
    numerator, denominator = numerator.double(), denominator.double()
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), 0.0)


def _averaged(per_class: torch.Tensor, stats: Stats, binary: bool) -> float:
    """The positive class's value for a binary classifier; else the mean over the classes in
    the targets or the predictions."""
    if binary:
        return float(per_class[1])
    present = (stats["predicted"] + stats["actual"]) > 0
    return float(per_class[present].mean()) if bool(present.any()) else 0.0


def _accuracy(s: Stats, binary: bool) -> float:
    return _share(s["right"].sum(), s["actual"].sum())


def _precision(s: Stats, binary: bool) -> float:
    return _averaged(_ratios(s["right"], s["predicted"]), s, binary)


def _recall(s: Stats, binary: bool) -> float:
    return _averaged(_ratios(s["right"], s["actual"]), s, binary)


def _f1(s: Stats, binary: bool) -> float:
    return _averaged(_ratios(2 * s["right"], s["predicted"] + s["actual"]), s, binary)


def _top5_accuracy(s: Stats, binary: bool) -> float:
    return _share(s["hits"], s["count"])


def _mae(s: Stats, binary: bool) -> float:
    return _share(s["absolute"].sum(), s["count"] * len(s["absolute"]))


def _mse(s: Stats, binary: bool) -> float:
    return _share(s["squared"].sum(), s["count"] * len(s["squared"]))


def _rmse(s: Stats, binary: bool) -> float:
    count = float(s["count"])
    return float((s["squared"] / count).sqrt().mean()) if count > 0 else 0.0


def _r2(s: Stats, binary: bool) -> float:
    count = float(s["count"])
    if count < 2:
        return math.nan  # scikit-learn: not well-defined with less than two samples
    total = (s["sum_squares"] - s["sum"] ** 2 / count).clamp(min=0)  # (D,)
    # float64 sums leave rounding where the targets are constant: that counts as none
    constant = total <= count * torch.finfo(torch.float64).eps * s["sum_squares"]
    residual = s["squared"]
    score = torch.where(constant, (residual == 0).double(),
                        1 - residual / torch.where(constant, 1.0, total))
    return float(score.mean())


def _pixel_accuracy(s: Stats, binary: bool) -> float:
    return _share(s["right"].sum(), s["actual"].sum())


def _overlap(s: Stats, binary: bool, dice: bool) -> float:
    right, predicted, actual = (s[k].double() for k in ("right", "predicted", "actual"))
    union = predicted + actual if dice else predicted + actual - right
    per_class = (2 * right if dice else right) / union.clamp(min=1)
    if binary:  # one logit: the foreground alone, as is usual
        return float(per_class[1])
    present = (predicted + actual) > 0  # a class in neither is left out of the mean
    return float(per_class[present].mean()) if bool(present.any()) else 0.0


def _iou(s: Stats, binary: bool) -> float:
    return _overlap(s, binary, dice=False)


def _dice(s: Stats, binary: bool) -> float:
    return _overlap(s, binary, dice=True)


# metric → (the statistics it needs, how it follows from them)
_TALLIED: dict[str, tuple[str, Callable[[Stats, bool], float]]] = {
    "accuracy": ("classes", _accuracy), "top5_accuracy": ("top5", _top5_accuracy),
    "precision": ("classes", _precision), "recall": ("classes", _recall),
    "f1": ("classes", _f1), "mae": ("values", _mae), "mse": ("values", _mse),
    "rmse": ("values", _rmse), "r2": ("values", _r2),
    "pixel_accuracy": ("pixels", _pixel_accuracy), "iou": ("pixels", _iou),
    "dice": ("pixels", _dice),
}


class Tally:
    """A split's metrics gathered batch by batch: exact, in memory that does not grow.

    Example:
        >>> tally = Tally(["accuracy", "f1"])
        >>> tally.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> tally.update(torch.tensor([[0.0, 3.0]]), torch.tensor([1]))
        >>> tally.compute()
        {'accuracy': 0.6666666666666666, 'f1': 0.6666666666666666}
    """

    def __init__(self, names: Sequence[str], threshold: float | None = None):
        self.names = [name for name in names if name in _TALLIED]  # knn_accuracy: not here
        self.cut = logit_cut(threshold)  # a binary classifier's decision, as predict makes it
        self.stats: dict[str, Stats] = {}
        self.binary: dict[str, bool] = {}

    def update(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: its outputs (logits or values) and targets."""
        outputs, target = outputs.detach().float(), target.detach()
        for kind in dict.fromkeys(_TALLIED[name][0] for name in self.names):
            stats = (_class_stats(outputs, target, self.cut) if kind == "classes"
                     else _KINDS[kind](outputs, target))
            _add(self.stats.setdefault(kind, {}), stats)
            if kind == "classes":
                self.binary[kind] = outputs.dim() == 1 or outputs.shape[-1] <= 2
            elif kind == "pixels":
                self.binary[kind] = outputs.shape[1] == 1

    def reduce(self, sum_across: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Add the tallies of every process of a data-parallel run (each then has all)."""
        for stats in self.stats.values():
            for key in stats:
                stats[key] = sum_across(stats[key])

    def compute(self) -> dict[str, float]:
        """Each metric over what was added (nothing when nothing was)."""
        if not self.stats:
            return {}
        result = {}
        for name in self.names:
            kind, metric = _TALLIED[name]
            result[name] = metric(self.stats[kind], self.binary.get(kind, False))
        return result


# distances computed at once in knn_accuracy: 2**24 floats (64 MiB) of a split × the reference
_DISTANCES_AT_ONCE = 2**24


def knn_accuracy(embeddings: torch.Tensor, labels: torch.Tensor,
                 reference: torch.Tensor | None = None,
                 reference_labels: torch.Tensor | None = None) -> float:
    """1-nearest-neighbour accuracy of embeddings: each (N, D) embedding gets the label of the
    nearest (L2) of the (M, D) `reference` embeddings — metric learning's training split —
    and scores when that is its own. Without a reference, the embeddings are their own,
    leaving each one out (its nearest other one counts).

    Distances are computed a block of rows at a time (at most 1024 rows, and 2**24
    distances), so a big split never holds N × M of them.

    Example:
        >>> knn_accuracy(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1]),
        ...              torch.tensor([[1.0], [4.0]]), torch.tensor([0, 0]))
        0.5
    """
    own = reference is None
    if reference is None or reference_labels is None:
        reference, reference_labels = embeddings, labels
    embeddings, reference = embeddings.float().flatten(1), reference.float().flatten(1)
    labels, reference_labels = labels.reshape(-1), reference_labels.reshape(-1)
    count = len(embeddings)
    if count == 0 or len(reference) <= int(own):  # no neighbour to ask
        return 0.0
    rows = max(1, min(1024, _DISTANCES_AT_ONCE // len(reference)))
    right = 0
    for start in range(0, count, rows):
        distances = torch.cdist(embeddings[start:start + rows], reference)  # (rows, M)
        if own:  # a sample is not its own neighbour
            block = torch.arange(len(distances))
            distances[block, block + start] = float("inf")
        nearest = distances.argmin(dim=1)  # (rows,)
        right += int((reference_labels[nearest] == labels[start:start + rows]).sum())
    return right / count


def _tallied(name: str) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def metric(outputs: torch.Tensor, target: torch.Tensor) -> float:
        tally = Tally([name])
        tally.update(outputs, target)
        return tally.compute()[name]
    metric.__name__ = name
    return metric


# every metric by name, each over whole-split tensors (outputs, targets)
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    **{name: _tallied(name) for name in _TALLIED},
    # of embeddings: metric learning's sessions score splits against the training split's
    "knn_accuracy": knn_accuracy,
}
CLASS_METRICS = ("accuracy", "top5_accuracy", "precision", "recall", "f1")
VALUE_METRICS = ("mae", "mse", "rmse", "r2")


def compute_metrics(names: list[str], outputs: torch.Tensor,
                    target: torch.Tensor) -> dict[str, float]:
    """Each named metric over a whole split."""
    tally = Tally(names)
    tally.update(outputs, target)
    values = tally.compute()
    return {name: values[name] if name in values else METRICS[name](outputs.float(), target)
            for name in names}
