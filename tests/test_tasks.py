"""Every registered task, driven by the registry: its example spec checks, and each
supervised task trains an epoch of it through the one engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlspec
from dlspec.errors import SpecError
from dlspec.tasks import TASKS, Task, get_task, task_names
from dlspec.tasks.supervised import SupervisedTask

ROOT = Path(__file__).resolve().parents[1]
SUPERVISED = [name for name in task_names() if issubclass(TASKS[name], SupervisedTask)]


@pytest.mark.parametrize("name", task_names())
def test_every_task_is_a_registered_plug_in_with_an_example(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name and task.summary
    assert task.example, f"task {name} names no example spec"
    spec = dlspec.load(ROOT / task.example, task.example_variant)
    assert spec.task is not None and spec.task.type == name
    shaped = dlspec.shapes(spec)  # the task's own checks run here
    assert bool(task.several_networks) == (len(shaped) > 1)
    exported = task.exported(dlspec.graphs(spec))
    assert exported and set(exported) <= set(shaped)


@pytest.mark.parametrize("name", SUPERVISED)
def test_every_supervised_task_trains_an_epoch_of_its_example(name: str,
                                                              tmp_path: Path) -> None:
    task = get_task(name)
    spec = dlspec.load(ROOT / task.example, task.example_variant)
    result = dlspec.train_spec(spec, tmp_path / "run", epochs=1)
    assert [int(r["epoch"]) for r in result.fit.history] == [1]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    metrics = spec.train.metrics or list(task.default_metrics)
    numbers = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(f"val_{m}" in numbers["epochs"][0] for m in metrics), numbers["epochs"][0]
    if result.test is not None:
        assert all(m in result.test for m in metrics)


def test_an_unknown_task_is_located_with_a_suggestion(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "specs" / "autoencoder.yaml").read_text().replace(
        "task: reconstruction", "task: reconstructon"))
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(spec)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "spec.yaml:" in result.stderr and "reconstruction" in result.stderr


def test_the_bilstm_tagger_tags_tokens_of_the_generated_grammar(tmp_path: Path) -> None:
    # padding (tag -100) counts for neither the loss nor the accuracy
    result = dlspec.train_spec(ROOT / "specs" / "bilstm_tagger.yaml", tmp_path / "run",
                               epochs=2)
    assert result.test is not None and result.test["accuracy"] >= 0.95


def test_an_autoencoder_rebuilds_its_inputs_and_sets_labels_aside(tmp_path: Path) -> None:
    result = dlspec.train_spec(ROOT / "specs" / "autoencoder.yaml", tmp_path / "run",
                               epochs=3)
    history = result.fit.history
    assert history[-1]["val_mse"] < history[0]["val_mse"]
    info = json.loads((tmp_path / "run" / "data.json").read_text())
    assert info["labels"] is None  # no classes: the targets are the images
    assert result.test is not None and result.test["mse"] < 0.5


def test_an_autoencoders_bottleneck_exports_and_predicts_as_features(tmp_path: Path) -> None:
    """specs/autoencoder.yaml trains its `reconstruction` output (shaped like the input); its
    `features` output has no target, and is exported and predicted beside it."""
    run = tmp_path / "run"
    dlspec.train_spec(ROOT / "specs" / "autoencoder.yaml", run, epochs=2)
    (exported,) = dlspec.export_spec(ROOT / "specs" / "autoencoder.yaml", run / "model.onnx",
                                     checkpoint=run)
    digits = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32) * 16
    np.save(tmp_path / "digits.npy", digits)
    for name in ("p.npz", "p.csv"):
        result = subprocess.run([sys.executable, "-m", "dlspec", "predict", str(exported.path),
                                 str(tmp_path / "digits.npy"), "-o", str(tmp_path / name)],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
    arrays = np.load(tmp_path / "p.npz")
    assert arrays["reconstruction"].shape == (6, 1, 8, 8) and arrays["features"].shape == (6, 8)
    assert (arrays["features"] >= 0).all()  # after the bottleneck's relu
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert header[1] == "reconstruction_0" and header[-8:] == [f"features_{i}" for i in range(8)]
    one = subprocess.run([sys.executable, "-m", "dlspec", "predict", str(exported.path),
                          str(tmp_path / "digits.npy"), "-o", str(tmp_path / "p.npy")],
                         capture_output=True, text=True, cwd=ROOT)
    assert one.returncode == 2 and "name the output file .npz" in one.stderr


def test_reconstruction_needs_an_output_shaped_like_its_input(tmp_path: Path) -> None:
    text = (ROOT / "specs" / "autoencoder.yaml").read_text()
    spec = dlspec.loads(text.replace("{name: rebuilt, reshape: [1, 8, 8]}",
                                     "{name: rebuilt, flatten}"), file="ae.yaml")
    with pytest.raises(SpecError, match=r"output shaped like input image 1×8×8; none is "
                                        r"\(reconstruction 64, features 8\)"):
        dlspec.train_spec(spec, tmp_path / "run", epochs=1)
