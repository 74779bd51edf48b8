"""Epoch metrics computed from a whole split's outputs and targets (no per-batch averaging bias)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def predicted_classes(outputs: torch.Tensor) -> torch.Tensor:
    """Class indices from logits: argmax, or `logit > 0` for a single output unit."""
    if outputs.dim() == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(-1) > 0).long()
    return outputs.argmax(dim=-1)


def _accuracy(outputs: torch.Tensor, target: torch.Tensor) -> float:
    return (predicted_classes(outputs) == target.reshape(-1).long()).float().mean().item()


def _top5_accuracy(outputs: torch.Tensor, target: torch.Tensor) -> float:
    k = min(5, outputs.shape[-1])
    top = outputs.topk(k, dim=-1).indices
    return (top == target.reshape(-1, 1)).any(dim=-1).float().mean().item()


def _per_class(outputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """True positives, predicted positives and actual positives per class."""
    predicted, actual = predicted_classes(outputs), target.reshape(-1).long()
    classes = max(int(outputs.shape[-1]) if outputs.dim() > 1 else 1, 2)
    tp = torch.bincount(actual[predicted == actual], minlength=classes).float()
    return tp, torch.bincount(predicted, minlength=classes).float(), \
        torch.bincount(actual, minlength=classes).float()


def _precision(outputs: torch.Tensor, target: torch.Tensor) -> float:
    tp, predicted, _ = _per_class(outputs, target)
    return (tp / predicted.clamp(min=1)).mean().item()  # macro average


def _recall(outputs: torch.Tensor, target: torch.Tensor) -> float:
    tp, _, actual = _per_class(outputs, target)
    return (tp / actual.clamp(min=1)).mean().item()


def _f1(outputs: torch.Tensor, target: torch.Tensor) -> float:
    tp, predicted, actual = _per_class(outputs, target)
    return (2 * tp / (predicted + actual).clamp(min=1)).mean().item()


def _mae(outputs: torch.Tensor, target: torch.Tensor) -> float:
    return (outputs - target.reshape(outputs.shape)).abs().mean().item()


def _mse(outputs: torch.Tensor, target: torch.Tensor) -> float:
    return ((outputs - target.reshape(outputs.shape)) ** 2).mean().item()


def _rmse(outputs: torch.Tensor, target: torch.Tensor) -> float:
    return _mse(outputs, target) ** 0.5


def _r2(outputs: torch.Tensor, target: torch.Tensor) -> float:
    target = target.reshape(outputs.shape).float()
    residual = ((target - outputs) ** 2).sum()
    total = ((target - target.mean(dim=0)) ** 2).sum().clamp(min=1e-12)
    return (1 - residual / total).item()


def predicted_masks(outputs: torch.Tensor) -> torch.Tensor:
    """Class maps (N, H, W) from segmentation logits (N, C, H, W): argmax over the classes,
    or `logit > 0` for one binary logit per pixel."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0).long()
    return outputs.argmax(dim=1)


def _overlaps(outputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per class: pixels in both the prediction and the mask, in the prediction, in the mask;
    for a binary logit only the foreground class (1) counts, as is usual."""
    predicted, actual = predicted_masks(outputs).reshape(-1), target.reshape(-1).long()
    classes = max(int(outputs.shape[1]), 2)
    both = torch.bincount(actual[predicted == actual], minlength=classes).float()
    counts = (both, torch.bincount(predicted, minlength=classes).float(),
              torch.bincount(actual, minlength=classes).float())
    if outputs.shape[1] == 1:
        return tuple(c[1:] for c in counts)
    present = (counts[1] + counts[2]) > 0  # a class in neither is left out of the mean
    return tuple(c[present] for c in counts)


def _pixel_accuracy(outputs: torch.Tensor, target: torch.Tensor) -> float:
    return (predicted_masks(outputs) == target.long()).float().mean().item()


def _iou(outputs: torch.Tensor, target: torch.Tensor) -> float:
    both, predicted, actual = _overlaps(outputs, target)
    return (both / (predicted + actual - both).clamp(min=1)).mean().item()


def _dice(outputs: torch.Tensor, target: torch.Tensor) -> float:
    both, predicted, actual = _overlaps(outputs, target)
    return (2 * both / (predicted + actual).clamp(min=1)).mean().item()


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


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": _accuracy, "top5_accuracy": _top5_accuracy, "precision": _precision,
    "recall": _recall, "f1": _f1, "mae": _mae, "mse": _mse, "rmse": _rmse, "r2": _r2,
    "pixel_accuracy": _pixel_accuracy, "iou": _iou, "dice": _dice,
    # of embeddings: metric learning's sessions score splits against the training split's
    "knn_accuracy": knn_accuracy,
}
CLASS_METRICS = ("accuracy", "top5_accuracy", "precision", "recall", "f1")
VALUE_METRICS = ("mae", "mse", "rmse", "r2")


def compute_metrics(names: list[str], outputs: torch.Tensor,
                    target: torch.Tensor) -> dict[str, float]:
    """Each named metric over a whole split."""
    outputs = outputs.float()
    return {name: METRICS[name](outputs, target) for name in names}
