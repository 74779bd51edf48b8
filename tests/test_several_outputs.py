"""Networks with several outputs train: a loss per output with weights, metrics per output,
metrics.csv columns per output, early stopping on any of them, and every output exported
and predicted."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlspec
from conftest import ROOT
from dlspec.errors import SpecError

TWO_HEADS = """\
dlspec: 1
name: two_heads
inputs:
  x: {shape: [4]}
network:
  - {name: shared, linear: 32}
  - relu
  - name: heads
    parallel:
      branches:
        category: [{name: fc, linear: 3}]
        price: [{name: fc, linear: 1}]
task: {type: classification, num_classes: 3}
loss:
  category: cross_entropy
  price: {type: mse, weight: 0.5}
optimizer: {type: adam, lr: 0.02}
data:
  npz: shop.npz
  inputs: {x: features}
  targets: {category: kind, price: cost}
  split: {train: 0.6, val: 0.2, test: 0.2}
train: {epochs: 12, batch_size: 32, seed: 0, metrics: {category: [accuracy], price: [mae, r2]}}
export: {onnx: {opset: 18, dynamic_axes: [batch]}}
"""


def save_shop(folder: Path, count: int = 300) -> np.ndarray:
    """Features whose first two columns give the kind (3 classes) and whose others the cost."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, 4)).astype(np.float32)
    kind = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    cost = (2 * x[:, 2] - x[:, 3]).astype(np.float32)
    np.savez(folder / "shop.npz", features=x, kind=kind, cost=cost)
    return x


def write_spec(folder: Path, text: str = TWO_HEADS, **changes: str) -> Path:
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    save_shop(folder)
    path = folder / "two_heads.yaml"
    path.write_text(text)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlspec", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_two_heads_train_export_and_predict_through_the_cli(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    out = tmp_path / "run"
    built = run("build", str(spec), "--out", str(out))
    assert built.returncode == 0, built.stderr
    with (out / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[:15] == [
        "epoch", "train_loss", "train_category_loss", "train_price_loss",
        "train_category_accuracy", "train_price_mae", "train_price_r2", "lr", "val_loss",
        "val_category_loss", "val_price_loss", "val_category_accuracy", "val_price_mae",
        "val_price_r2", "seconds"]
    for row in rows:  # the total is the weighted sum of the heads' losses
        for split in ("train", "val"):
            total = (float(row[f"{split}_category_loss"])
                     + 0.5 * float(row[f"{split}_price_loss"]))
            assert float(row[f"{split}_loss"]) == pytest.approx(total, rel=1e-5)
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert test["category_accuracy"] > 0.8  # chance is about 1/3
    assert test["price_r2"] > 0.8  # both heads learnt
    assert "category_accuracy" in (out / "report.md").read_text()

    features = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", features)
    predicted = run("predict", str(out / "model.onnx"), str(tmp_path / "x.npy"),
                    "-o", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr
    with (tmp_path / "p.csv").open() as file:
        table = list(csv.DictReader(file))
    assert len(table) == 5
    assert {"category_class", "category_probability", "category_p_0", "price"} <= set(table[0])


def test_the_weight_of_an_output_steers_what_training_favours(tmp_path: Path) -> None:
    """The same seed with the price's weight 0.01 instead of 10: the price learns less."""
    def price_loss(weight: str) -> float:
        folder = tmp_path / weight
        folder.mkdir()
        spec = write_spec(folder, **{"weight: 0.5": f"weight: {weight}", "epochs: 12":
                                     "epochs: 3"})
        result = dlspec.train_spec(spec, folder / "run")
        return result.fit.history[-1]["val_price_loss"]

    assert price_loss("10") < price_loss("0.01")


def test_outputs_without_a_loss_get_their_targets_default(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, **{"loss:\n  category: cross_entropy\n  price: {type: mse, "
                                   "weight: 0.5}\n": "", "epochs: 12": "epochs: 2"})
    result = dlspec.train_spec(spec, tmp_path / "run")
    record = result.fit.history[-1]
    assert record["val_loss"] == pytest.approx(record["val_category_loss"]
                                               + record["val_price_loss"], rel=1e-5)


def test_early_stopping_watches_any_output_column(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, **{"epochs: 12": "epochs: 6",
                                   "train: {": "train: {early_stopping: {metric: val_price_mae,"
                                   " patience: 20}, "})
    result = dlspec.train_spec(spec, tmp_path / "run")
    maes = [record["val_price_mae"] for record in result.fit.history]
    assert result.fit.best_epoch == 1 + maes.index(min(maes))


def test_a_metric_list_goes_to_the_outputs_it_suits(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, **{"{category: [accuracy], price: [mae, r2]}":
                                   "[accuracy, mae]", "epochs: 12": "epochs: 1"})
    record = dlspec.train_spec(spec, tmp_path / "run").fit.history[-1]
    assert "val_category_accuracy" in record and "val_price_mae" in record
    assert "val_price_accuracy" not in record and "val_category_mae" not in record


@pytest.mark.parametrize(("change", "where", "words"), [
    ({"loss:\n  category: cross_entropy\n  price: {type: mse, weight: 0.5}\n": "loss: mse\n"},
     "loss", ["one loss for 2 trained outputs", "loss: {category: ..., price: ...}"]),
    ({"{category: [accuracy], price: [mae, r2]}": "[iou]"},
     "train.metrics[0]", ["iou suits none of the outputs"]),
    ({"price: [mae, r2]": "price: [accuracy]"},
     "train.metrics.price[0]", ["accuracy is not a metric of output price"]),
    ({"category: cross_entropy": "category: mse"},
     "loss.category", ["mse compares values", "classification (output category)"]),
    ({"targets: {category: kind, price: cost}": "targets: {category: kind}"},
     "loss.price", ["output price has no targets"]),
])
def test_losses_and_metrics_that_cannot_train_an_output_are_located(
        tmp_path: Path, change: dict[str, str], where: str, words: list[str]) -> None:
    spec = write_spec(tmp_path, **change)
    result = run("train", str(spec), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{spec}:") and f": {where}: " in first, first
    for word in words:
        assert word in first, first


def test_a_number_weight_on_a_network_with_one_output_is_refused(tmp_path: Path) -> None:
    single = TWO_HEADS.replace(
        "  - name: heads\n    parallel:\n      branches:\n        category: [{name: fc, "
        "linear: 3}]\n        price: [{name: fc, linear: 1}]\n", "  - {name: category, "
        "linear: 3}\n").replace(
        "loss:\n  category: cross_entropy\n  price: {type: mse, weight: 0.5}\n",
        "loss: {type: cross_entropy, weight: 2.0}\n").replace(
        "targets: {category: kind, price: cost}", "targets: {output: kind}").replace(
        "{category: [accuracy], price: [mae, r2]}", "[accuracy]")
    spec = write_spec(tmp_path, single)
    with pytest.raises(SpecError, match="shares the loss among several outputs"):
        dlspec.train_spec(spec, tmp_path / "run")
    spec.write_text(single.replace("weight: 2.0", "weight: [1.0, 2.0, 1.0]"))
    assert dlspec.train_spec(spec, tmp_path / "run", epochs=1).fit.history  # class weights train


def test_a_gan_with_a_loss_per_output_is_a_located_error() -> None:
    text = (ROOT / "specs" / "dcgan.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("loss:")]
    spec = dlspec.loads("\n".join([*lines, "loss: {generator: hinge}"]), file="gan.yaml")
    with pytest.raises(SpecError, match="trains with one objective, not a loss per output"):
        dlspec.shapes(spec)
