"""`task: metric_learning`: embeddings trained on pairs and triplets of labelled samples.

Each metric-learning loss trains an embedding whose nearest neighbours share its class; the
partners are drawn deterministically from the seed (a positive of the anchor's class, a
negative of another); the losses and the task refuse each other's families; knn_accuracy is
checked by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dlspec
from dlspec.cli import main
from dlspec.errors import SpecError
from dlspec.spec.sections import TaskConfig
from dlspec.train import metrics
from dlspec.train.losses import make_loss
from dlspec.train.metric_learning import Classes, draw_pairs, draw_triplets
from dlspec.train.metrics import knn_accuracy

ROOT = Path(__file__).resolve().parents[1]

IRIS = """\
dlspec: 1
name: iris_embedding
inputs:
  x: {{shape: [4]}}
network:
  - {{name: hidden, linear: 16}}
  - relu
  - {{name: embed, linear: 4}}
task: metric_learning
loss: {loss}
optimizer: {{type: adam, lr: 0.01}}
data: {{dataset: iris, normalize: auto, split: {{train: 0.6, val: 0.2, test: 0.2}}}}
train: {{epochs: {epochs}, batch_size: 16, seed: 0}}
"""


def iris(loss: str = "triplet", epochs: int = 12) -> dlspec.Spec:
    return dlspec.loads(IRIS.format(loss=loss, epochs=epochs), file="iris.yaml")


# ------------------------------------------------------------------------------ training


@pytest.mark.parametrize("loss", ["triplet", "contrastive", "{type: cosine_embedding, "
                                  "margin: 0.2}"])
def test_each_loss_trains_embeddings_whose_nearest_neighbours_share_their_class(
        loss: str, tmp_path: Path) -> None:
    result = dlspec.train_spec(iris(loss), tmp_path / "run")
    history = result.fit.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert min(r["val_loss"] for r in history) < history[0]["val_loss"]
    assert result.test is not None and result.test["knn_accuracy"] > 0.8  # chance: 1/3


def test_the_default_loss_is_triplet_and_runs_are_deterministic(tmp_path: Path) -> None:
    spec = dlspec.loads(IRIS.format(loss="triplet", epochs=2).replace("loss: triplet\n", ""),
                        file="iris.yaml")
    assert type(make_loss(None, spec.task)) is nn.TripletMarginLoss
    first = dlspec.train_spec(spec, tmp_path / "a")
    second = dlspec.train_spec(spec, tmp_path / "b")
    drop = ("seconds", "samples_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in first.fit.history] == \
        [{k: v for k, v in r.items() if k not in drop} for r in second.fit.history]


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    # the partners of the second epoch are drawn from the checkpointed batch order
    whole = dlspec.train_spec(iris("contrastive", epochs=3), tmp_path / "whole")
    dlspec.train_spec(iris("contrastive", epochs=3), tmp_path / "part", epochs=1)
    resumed = dlspec.train_spec(iris("contrastive", epochs=3), tmp_path / "part",
                                resume=True)
    assert resumed.test == whole.test
    assert (tmp_path / "part" / "model.safetensors").read_bytes() == \
        (tmp_path / "whole" / "model.safetensors").read_bytes()


def test_augmentation_changes_every_member_of_a_triplet(tmp_path: Path) -> None:
    text = (ROOT / "specs" / "siamese_digits.yaml").read_text().replace(
        "\ntask: metric_learning\n", "\ntask: metric_learning\naugment: {images: {rotation: 10}}\n")
    result = dlspec.train_spec(dlspec.loads(text, file="siamese.yaml"), tmp_path / "run",
                               epochs=1)
    assert result.fit.history[0]["val_knn_accuracy"] > 0.5  # ten classes: chance 0.1


def test_the_real_cli_trains_the_example_spec(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = subprocess.run([sys.executable, "-m", "dlspec", "train",
                              "specs/siamese_digits.yaml", "--epochs", "2", "--out", str(run)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert trained.returncode == 0, trained.stderr
    numbers = json.loads((run / "metrics.json").read_text())
    assert numbers["epochs"][-1]["val_knn_accuracy"] > 0.8
    assert numbers["test"]["knn_accuracy"] > 0.8
    assert json.loads((run / "data.json").read_text())["labels"] is None


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("spec", "old", "new", "words"), [
    ("siamese_digits", "loss: {type: triplet, margin: 1.0}", "loss: cross_entropy",
     "cross_entropy compares an output with its target, but task metric_learning"),
    ("lenet5", "loss: cross_entropy", "loss: {type: triplet, margin: 0.5}",
     "triplet is a metric-learning loss"),
    ("rnn", "loss: {type: huber, delta: 1.0}", "loss: contrastive",
     "contrastive is a metric-learning loss"),
])
def test_a_loss_of_the_other_family_is_a_located_error(
        spec: str, old: str, new: str, words: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "specs" / f"{spec}.yaml").read_text()
    assert old in text
    path = tmp_path / "spec.yaml"
    path.write_text(text.replace(old, new, 1))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if words in line)
    assert line.startswith(f"{path}:") and ": loss: " in line
    assert "; use " in line  # the hint
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(("changes", "words"), [
    ({"seed: 0}": "seed: 0, metrics: [accuracy]}"}, "accuracy is not a metric of task "
     "metric_learning"),
    ({"dataset: iris,": "npz: values.npz,"},
     "metric_learning needs class labels.* not whole numbers"),
    ({"dataset: iris,": "npz: values.npz, y_key: y2,"}, "metric_learning needs one class per "
     "sample, but the targets are 2 per sample"),
])
def test_metric_learning_refuses_other_metrics_and_data_without_classes(
        changes: dict[str, str], words: str, tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    np.savez(tmp_path / "values.npz", x=generator.random((40, 4), dtype=np.float32),
             y=generator.random(40, dtype=np.float32), y2=np.zeros((40, 2), np.int64))
    text = IRIS.format(loss="triplet", epochs=1)
    for old, new in changes.items():
        text = text.replace(old, new)
    spec = dlspec.loads(text, file=str(tmp_path / "i.yaml"))
    with pytest.raises(SpecError, match=words):
        dlspec.train_spec(spec, tmp_path / "run")


@pytest.mark.parametrize(("loss", "task", "shape", "words"), [
    ("cosine_embedding", "metric_learning", (1,), "the cosine of two numbers"),
    ("mse", "metric_learning", (16,), "mse compares an output with its target"),
    ("triplet", "segmentation", (2, 8, 8), "triplet is a metric-learning loss"),
])
def test_loss_checks_without_training(loss: str, task: str, shape: tuple[int, ...],
                                      words: str) -> None:
    from pydantic import TypeAdapter

    from dlspec.spec.sections import Loss
    from dlspec.train.losses import check_loss_against_output

    section = TypeAdapter(Loss).validate_python(loss)
    with pytest.raises(SpecError, match=words):
        check_loss_against_output(section, TaskConfig(type=task), shape)  # type: ignore[arg-type]


def test_knn_accuracy_is_refused_for_other_tasks(tmp_path: Path) -> None:
    text = (ROOT / "specs" / "mlp.yaml").read_text().replace("metrics: [accuracy]",
                                                             "metrics: [knn_accuracy]")
    with pytest.raises(SpecError, match="knn_accuracy is not a metric of task classification"):
        dlspec.train_spec(dlspec.loads(text, file="mlp.yaml"), tmp_path / "run", epochs=1)


def test_an_embedding_must_be_a_vector() -> None:
    text = (ROOT / "specs" / "siamese_digits.yaml").read_text().replace(
        "  - flatten\n", "  - {reshape: [8, 8]}\n")  # each row of pixels embedded alone
    with pytest.raises(SpecError, match=r"embeds a sample as a vector \(D,\), but output "
                                        r"embedding is 8×16"):
        dlspec.shapes(dlspec.loads(text, file="s.yaml"))


# ------------------------------------------------------------------------------ partners


LABELS = torch.tensor([3, 1, 3, 7, 1, 3, 7, 7, 9, 1])  # class 9 has one sample


def test_partners_share_the_anchors_class_or_not_and_repeat_for_a_seed() -> None:
    classes, anchors = Classes(LABELS), torch.arange(len(LABELS)).repeat(50)
    positive, negative = draw_triplets(classes, anchors, torch.Generator().manual_seed(0))
    again = draw_triplets(classes, anchors, torch.Generator().manual_seed(0))
    assert torch.equal(positive, again[0]) and torch.equal(negative, again[1])
    other = draw_triplets(classes, anchors, torch.Generator().manual_seed(1))
    assert not torch.equal(positive, other[0])
    alone = LABELS[anchors] == 9
    assert torch.equal(LABELS[positive], LABELS[anchors])
    assert (positive[~alone] != anchors[~alone]).all()  # itself only when alone in its class
    assert (positive[alone] == anchors[alone]).all()
    assert (LABELS[negative] != LABELS[anchors]).all()
    # every other sample of the class, and of the other classes, gets drawn
    assert set(positive[anchors == 0].tolist()) == {2, 5}
    assert set(negative[anchors == 0].tolist()) == {1, 3, 4, 6, 7, 8, 9}


def test_pairs_are_of_one_class_about_half_the_time_and_say_so() -> None:
    classes, anchors = Classes(LABELS), torch.arange(len(LABELS)).repeat(100)
    partner, same = draw_pairs(classes, anchors, torch.Generator().manual_seed(0))
    assert torch.equal(same == 1, LABELS[partner] == LABELS[anchors])
    assert set(same.tolist()) == {1.0, -1.0}
    assert 0.4 < (same == 1).float().mean().item() < 0.6
    assert torch.equal(partner, draw_pairs(classes, anchors,
                                           torch.Generator().manual_seed(0))[0])


def test_a_split_of_one_class_pairs_its_samples_with_themselves_as_negatives() -> None:
    positive, negative = draw_triplets(Classes(torch.tensor([4, 4, 4])), torch.arange(3),
                                       torch.Generator().manual_seed(0))
    assert (positive != torch.arange(3)).all() and torch.equal(negative, torch.arange(3))


# ------------------------------------------------------------------------------ knn_accuracy


def test_knn_accuracy_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])  # classes 0, 1, 2
    reference_labels = torch.tensor([0, 1, 2])
    points = torch.tensor([[1.0, 1.0], [9.0, 1.0], [1.0, 7.0], [6.0, 1.0]])
    labels = torch.tensor([0, 1, 2, 0])  # the last lies nearer class 1's point
    assert knn_accuracy(points, labels, reference, reference_labels) == 0.75
    # without a reference, each point's nearest other point: 0→3 (0 ✓), 1→3 (0 ✗),
    # 2→0 (0 ✗), 3→1 (1 ✗)
    assert knn_accuracy(points, labels) == 0.25
    assert metrics.METRICS["knn_accuracy"](points, labels) == 0.25
    # in blocks of one row at a time: the same answers
    monkeypatch.setattr(metrics, "_DISTANCES_AT_ONCE", 1)
    assert knn_accuracy(points, labels, reference, reference_labels) == 0.75
    assert knn_accuracy(points, labels) == 0.25


def test_knn_accuracy_in_blocks_matches_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(0)
    points, reference = torch.randn(300, 5, generator=generator), torch.randn(200, 5)
    labels, reference_labels = torch.randint(0, 3, (300,)), torch.randint(0, 3, (200,))
    nearest = torch.cdist(points, reference).argmin(dim=1)
    expected = (reference_labels[nearest] == labels).float().mean().item()
    monkeypatch.setattr(metrics, "_DISTANCES_AT_ONCE", 7 * 200)  # blocks of 7 rows
    assert knn_accuracy(points, labels, reference, reference_labels) == pytest.approx(expected)


def test_metric_losses_are_pytorchs_own_with_their_parameters() -> None:
    task = TaskConfig(type="metric_learning")  # type: ignore[arg-type]
    from pydantic import TypeAdapter

    from dlspec.spec.sections import Loss

    def built(value: object) -> nn.Module:
        return make_loss(TypeAdapter(Loss).validate_python(value), task)

    triplet = built({"type": "triplet", "margin": 0.3, "p": 1.0, "swap": True})
    assert isinstance(triplet, nn.TripletMarginLoss)
    assert (triplet.margin, triplet.p, triplet.swap) == (0.3, 1.0, True)
    contrastive = built({"type": "contrastive", "margin": 2.0, "reduction": "sum"})
    assert isinstance(contrastive, nn.HingeEmbeddingLoss)
    assert (contrastive.margin, contrastive.reduction) == (2.0, "sum")
    cosine = built({"type": "cosine_embedding", "margin": 0.5})
    assert isinstance(cosine, nn.CosineEmbeddingLoss) and cosine.margin == 0.5
