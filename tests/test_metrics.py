"""Metrics as scikit-learn computes them: each compared with `sklearn.metrics` on random and
edge-case inputs, whole or tallied batch by batch."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from dlspec.train.metrics import Tally, compute_metrics

CLASSES = ("accuracy", "precision", "recall", "f1")
VALUES = ("mae", "mse", "rmse", "r2")


def sklearn_classes(target: np.ndarray, predicted: np.ndarray, binary: bool) -> dict[str, float]:
    """What scikit-learn says: its default `average="binary"` for two classes, the macro
    average over the labels present otherwise; zero_division=0."""
    average = "binary" if binary else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings of zero_division
        return {"accuracy": sk.accuracy_score(target, predicted),
                "precision": sk.precision_score(target, predicted, average=average,
                                                zero_division=0),
                "recall": sk.recall_score(target, predicted, average=average, zero_division=0),
                "f1": sk.f1_score(target, predicted, average=average, zero_division=0)}


def logits_for(predicted: np.ndarray, classes: int) -> torch.Tensor:
    """Logits (N, C) whose argmax is `predicted`, with noise."""
    logits = torch.randn(len(predicted), classes) * 0.1
    logits[torch.arange(len(predicted)), torch.from_numpy(predicted)] += 5.0
    return logits


def tallied(names: tuple[str, ...], outputs: torch.Tensor, target: torch.Tensor,
            parts: int = 3) -> dict[str, float]:
    """The metrics added up over `parts` batches."""
    tally = Tally(list(names))
    for out, tgt in zip(outputs.tensor_split(parts), target.tensor_split(parts), strict=True):
        tally.update(out, tgt)
    return tally.compute()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("classes", [3, 5, 10])
def test_multiclass_metrics_are_sklearns_macro_averages(seed: int, classes: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 60))
    # few labels drawn from many classes: some classes absent from targets, predictions or both
    target = rng.integers(0, classes, size)
    predicted = np.where(rng.random(size) < 0.6, target, rng.integers(0, classes, size))
    logits = logits_for(predicted, classes)
    expected = sklearn_classes(target, predicted, binary=False)
    assert compute_metrics(list(CLASSES), logits, torch.from_numpy(target)) == \
        pytest.approx(expected)
    assert tallied(CLASSES, logits, torch.from_numpy(target)) == pytest.approx(expected)


@pytest.mark.parametrize(("target", "predicted", "classes"), [
    ([0, 1, 1, 0, 1], [0, 1, 1, 0, 1], 3),  # perfect, class 2 absent: 1.0 (not 0.667)
    ([2, 2, 2], [2, 2, 2], 4),  # all one class, predicted right
    ([2, 2, 2], [0, 0, 0], 4),  # all one class, predicted wrong
    ([0, 0, 1, 1], [0, 0, 0, 0], 3),  # a class never predicted: precision 0 for it
    ([0, 1, 2, 3], [3, 2, 1, 0], 4),  # all wrong
    ([0], [0], 10),  # one sample
])
def test_multiclass_edge_cases_match_sklearn(target: list[int], predicted: list[int],
                                             classes: int) -> None:
    logits = logits_for(np.array(predicted), classes)
    numbers = compute_metrics(list(CLASSES), logits, torch.tensor(target))
    assert numbers == pytest.approx(sklearn_classes(np.array(target), np.array(predicted),
                                                    binary=False))


def test_a_perfect_prediction_with_an_absent_class_scores_one() -> None:
    logits = logits_for(np.array([0, 1, 1, 0]), 3)
    numbers = compute_metrics(list(CLASSES), logits, torch.tensor([0, 1, 1, 0]))
    assert numbers == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("logits", [1, 2])
def test_binary_metrics_are_the_positive_classs(seed: int, logits: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(4, 50))
    target = (rng.random(size) < rng.random()).astype(np.int64)
    scores = torch.from_numpy(rng.normal(size=(size, logits))).float()
    predicted = (scores[:, 0] > 0 if logits == 1 else scores.argmax(1)).long().numpy()
    # one logit: targets are floats 0./1. as binary_cross_entropy takes them
    given = torch.from_numpy(target).float() if logits == 1 else torch.from_numpy(target)
    expected = sklearn_classes(target, predicted, binary=True)
    assert compute_metrics(list(CLASSES), scores, given) == pytest.approx(expected)
    assert tallied(CLASSES, scores, given) == pytest.approx(expected)


@pytest.mark.parametrize(("target", "logit"), [
    ([1, 1, 1], [2.0, 1.0, 3.0]),  # all positive, all found
    ([0, 0, 0], [-2.0, -1.0, -3.0]),  # all negative, none predicted: 0 by zero_division
    ([0, 0, 1], [1.0, 1.0, 1.0]),  # all predicted positive
    ([1, 0], [-1.0, -1.0]),  # nothing predicted positive
])
def test_binary_edge_cases_match_sklearn(target: list[int], logit: list[float]) -> None:
    scores = torch.tensor(logit).reshape(-1, 1)
    predicted = (scores[:, 0] > 0).long().numpy()
    numbers = compute_metrics(list(CLASSES), scores, torch.tensor(target).float())
    assert numbers == pytest.approx(sklearn_classes(np.array(target), predicted, binary=True))


def test_top5_accuracy_matches_sklearn() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 8, generator=generator)
    target = torch.randint(0, 8, (40,), generator=generator)
    expected = sk.top_k_accuracy_score(target.numpy(), logits.numpy(), k=5, labels=range(8))
    assert compute_metrics(["top5_accuracy"], logits, target)["top5_accuracy"] == \
        pytest.approx(expected)
    assert tallied(("top5_accuracy",), logits, target)["top5_accuracy"] == \
        pytest.approx(expected)


def sklearn_values(target: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    target, predicted = target.reshape(len(target), -1), predicted.reshape(len(target), -1)
    return {"mae": sk.mean_absolute_error(target, predicted),
            "mse": sk.mean_squared_error(target, predicted),
            "rmse": sk.root_mean_squared_error(target, predicted),
            "r2": sk.r2_score(target, predicted)}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(), (1,), (3,), (4, 2)])
def test_value_metrics_are_sklearns_uniform_averages(seed: int, shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(seed)
    # outputs of different scales: a variance-weighted r2 would differ from the uniform one
    scale = torch.arange(1, math.prod(shape) + 1).reshape(shape).float() ** 2
    target = torch.randn(30, *shape, generator=generator) * scale + 100
    outputs = target + torch.randn(30, *shape, generator=generator) * scale * 0.5
    expected = sklearn_values(target.double().numpy(), outputs.double().numpy())
    assert compute_metrics(list(VALUES), outputs, target) == pytest.approx(expected, rel=1e-5)
    assert tallied(VALUES, outputs, target) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("target", "predicted"), [
    ([[3.0, 1.0], [3.0, 2.0], [3.0, 3.0]], [[3.0, 1.5], [3.0, 2.0], [3.0, 2.0]]),  # constant,
    ([[3.0, 1.0], [3.0, 2.0], [3.0, 3.0]], [[2.0, 1.5], [3.0, 2.0], [3.0, 2.0]]),  # exact or not
    ([[0.1], [0.1], [0.1], [0.1]], [[0.1], [0.1], [0.1], [0.1]]),  # constant 0.1, exact
    ([[1.0], [2.0]], [[2.0], [1.0]]),  # worse than the mean: negative
])
def test_value_edge_cases_match_sklearn(target: list[list[float]],
                                        predicted: list[list[float]]) -> None:
    numbers = compute_metrics(list(VALUES), torch.tensor(predicted), torch.tensor(target))
    expected = sklearn_values(np.array(target, dtype=np.float32).astype(np.float64),
                              np.array(predicted, dtype=np.float32).astype(np.float64))
    assert numbers == pytest.approx(expected)


def test_r2_of_one_sample_is_nan_as_in_sklearn() -> None:
    assert math.isnan(compute_metrics(["r2"], torch.tensor([[1.0]]), torch.tensor([[2.0]]))["r2"])


def test_segmentation_metrics_keep_their_definitions() -> None:
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (6, 5, 7), generator=generator)
    target[target == 1] = 0  # class 1 appears in no mask
    logits = torch.randn(6, 4, 5, 7, generator=generator)  # 4 logits: class 3 never a mask
    predicted = logits.argmax(1)
    present = sorted(set(target.unique().tolist()) | set(predicted.unique().tolist()))
    flat_target, flat_predicted = target.reshape(-1).numpy(), predicted.reshape(-1).numpy()
    iou = sk.jaccard_score(flat_target, flat_predicted, labels=present, average="macro",
                           zero_division=0)
    dice = sk.f1_score(flat_target, flat_predicted, labels=present, average="macro",
                       zero_division=0)
    expected = {"pixel_accuracy": sk.accuracy_score(flat_target, flat_predicted),
                "iou": iou, "dice": dice}
    names = ("pixel_accuracy", "iou", "dice")
    assert compute_metrics(list(names), logits, target) == pytest.approx(expected)
    assert tallied(names, logits, target) == pytest.approx(expected)
    # one binary logit a pixel: the foreground's
    binary = (target > 0).long()
    logit = torch.randn(6, 1, 5, 7, generator=generator)
    fore = (logit[:, 0] > 0).long().reshape(-1).numpy()
    expected = {"pixel_accuracy": sk.accuracy_score(binary.reshape(-1).numpy(), fore),
                "iou": sk.jaccard_score(binary.reshape(-1).numpy(), fore),
                "dice": sk.f1_score(binary.reshape(-1).numpy(), fore)}
    assert tallied(names, logit, binary) == pytest.approx(expected)


def test_a_tally_of_nothing_reports_nothing_and_knn_is_not_tallied() -> None:
    assert Tally(["accuracy"]).compute() == {}
    tally = Tally(["knn_accuracy", "accuracy"])
    tally.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert tally.compute() == {"accuracy": 1.0}


def test_a_binary_threshold_decides_as_predict_does() -> None:
    logits = torch.tensor([-1.0, 0.2, 0.9, 2.5])  # probabilities 0.27, 0.55, 0.71, 0.92
    target = torch.tensor([0, 0, 1, 1])
    default, strict = Tally(["accuracy", "precision"]), Tally(["accuracy", "precision"], 0.6)
    default.update(logits, target)
    strict.update(logits, target)
    assert default.compute() == {"accuracy": 0.75, "precision": 2 / 3}
    assert strict.compute() == {"accuracy": 1.0, "precision": 1.0}  # 0.55 is now negative
