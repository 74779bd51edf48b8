"""`dlspec evaluate`: a run (torch) or its exported model (no torch) scored on labelled data;
the numbers agree with the run's own and with scikit-learn's; labelled files that do not fit
the model are refused with their place named."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.metrics import (
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    root_mean_squared_error,
)
from test_experiments import PNG, cli
from test_runtime import LABELS, classifier, reference, run_python, torch_modules, write_png

import dlspec
from dlspec.errors import FileError, SpecError
from dlspec.experiments.evaluate import Options, evaluate
from dlspec.experiments.scoring import class_scores, value_scores
from dlspec.runtime import Predictor

HALFMOONS = """\
dlspec: 1
name: halfmoons
inputs:
  x: {shape: [2]}
network:
  - {name: hidden, linear: 16}
  - relu
  - {name: out, linear: 2}
task: classification
optimizer: {type: adam, lr: 0.05}
data: {csv: moons.csv, target: side, normalize: true, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 2, batch_size: 32, seed: 3, metrics: [accuracy, f1]}
"""


def write_moons(path: Path, count: int, seed: int, column: str = "side") -> np.ndarray:
    """Two half moons as a CSV: columns a, b and the class name (left or right)."""
    x, y = make_moons(count, noise=0.2, random_state=seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", column])
        writer.writerows([f"{p:.5f}", f"{q:.5f}", ("left", "right")[c]]
                         for (p, q), c in zip(x, y, strict=True))
    return y


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec trained on a CSV of class names (run runs/halfmoons) and exported, with a
    second labelled CSV (held_out.csv) to evaluate on."""
    folder = tmp_path_factory.mktemp("evaluate")
    write_moons(folder / "moons.csv", 300, seed=0)
    write_moons(folder / "held_out.csv", 80, seed=1)
    (folder / "halfmoons.yaml").write_text(HALFMOONS)
    spec = dlspec.load(folder / "halfmoons.yaml")
    run = folder / "runs" / "halfmoons"
    dlspec.train_spec(spec, run)
    dlspec.export_spec(spec, checkpoint=run)
    return folder


def test_a_run_on_its_test_split_reproduces_its_test_numbers(project: Path) -> None:
    run = project / "runs" / "halfmoons"
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    result = cli("evaluate", "runs/halfmoons", cwd=project)  # data paths from the cwd
    assert result.returncode == 0, result.stderr
    first, numbers = result.stdout.splitlines()[:2]
    assert first == ("runs/halfmoons on its test split: 60 samples of moons.csv (CSV, 2 "
                     "features, target 'side'), 300 samples")
    assert numbers.startswith(f"accuracy {recorded['accuracy']:.4f}, ")
    written = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert written["samples"] == 60 and written["task"] == "classification"
    assert written["metrics"]["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert [row["class"] for row in written["per_class"]] == ["left", "right"]
    assert (run / "evaluation" / "confusion.png").read_bytes().startswith(PNG)
    assert (run / "evaluation" / "per_class.csv").read_text().startswith(
        "class,precision,recall,f1,support\nleft,")
    assert result.stderr == ("wrote runs/halfmoons/evaluation/: metrics.json, per_class.csv, "
                             "confusion.png\n")


def test_the_run_and_its_onnx_model_score_a_csv_alike_without_torch(project: Path,
                                                                    tmp_path: Path) -> None:
    run = project / "runs" / "halfmoons"
    from_run = evaluate(run, project / "held_out.csv")
    result = run_python("-X", "importtime", "-m", "dlspec", "evaluate", str(run / "model.onnx"),
                        str(project / "held_out.csv"), "-o", str(tmp_path / "onnx"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch_modules(result.stderr) == []
    from_model = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    assert from_model["samples"] == from_run.samples == 80
    assert from_model["metrics"] == pytest.approx(from_run.metrics, abs=1e-9)
    assert from_model["data"].endswith("held_out.csv (labels: column 'side')")
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "confusion.png", "metrics.json", "per_class.csv"]


def test_per_class_csv_is_what_scikit_learn_computes(project: Path, tmp_path: Path) -> None:
    model = project / "runs" / "halfmoons" / "model.onnx"
    write_moons(tmp_path / "moons.csv", 80, seed=5)
    lines = (tmp_path / "moons.csv").read_text().splitlines()
    left = [line for line in lines[1:] if line.endswith(",left")]  # right is never true
    (tmp_path / "left.csv").write_text("\n".join([lines[0], *left]) + "\n")
    assert cli("evaluate", model, tmp_path / "left.csv", "-o", tmp_path).returncode == 0
    with open(tmp_path / "per_class.csv") as handle:
        rows = list(csv.DictReader(handle))
    x = np.loadtxt(tmp_path / "left.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    predicted = Predictor(model).classify(x.astype(np.float32)).indices
    assert 0 < predicted.sum() < len(predicted)  # some taken for right: two classes count
    truth = np.zeros(len(predicted), dtype=np.int64)
    wanted = precision_recall_fscore_support(truth, predicted, zero_division=0)
    assert [row["class"] for row in rows] == ["left", "right"]
    for i, row in enumerate(rows):
        assert [float(row[k]) for k in ("precision", "recall", "f1")] == pytest.approx(
            [wanted[0][i], wanted[1][i], wanted[2][i]])
        assert int(row["support"]) == wanted[3][i]


@pytest.mark.parametrize("seed", range(5))
def test_class_scores_agree_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 50)  # some of 6 classes: absent ones never count
    predicted = np.where(rng.random(50) < 0.6, truth, rng.integers(0, 6, 50))
    scores = class_scores(truth, predicted, [f"c{i}" for i in range(6)])
    for got, wanted in zip((scores.precision, scores.recall, scores.f1, scores.support),
                           precision_recall_fscore_support(truth, predicted, zero_division=0),
                           strict=True):
        np.testing.assert_allclose(got, wanted)
    macro = precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    assert [scores.metrics()[k] for k in ("precision", "recall", "f1")] == pytest.approx(
        list(macro[:3]))
    assert scores.labels == [f"c{i}" for i in np.union1d(truth, predicted)]


def test_a_perfect_prediction_with_a_class_absent_scores_one() -> None:
    scores = class_scores(np.array([0, 0, 1]), np.array([0, 0, 1]), ["a", "b", "c"])
    assert scores.metrics() == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


@pytest.mark.parametrize("seed", range(3))
def test_a_binary_classifier_scores_its_positive_class_as_training_does(seed: int) -> None:
    """scikit-learn's default (`average="binary"`), and the numbers metrics.csv reports."""
    import torch

    from dlspec.train.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 40)
    predicted = np.where(rng.random(40) < 0.7, truth, 1 - truth)
    scores = class_scores(truth, predicted, ["no", "yes"]).metrics()
    wanted = precision_recall_fscore_support(truth, predicted, zero_division=0,
                                             average="binary")
    assert [scores[k] for k in ("precision", "recall", "f1")] == pytest.approx(list(wanted[:3]))
    logits = torch.from_numpy(np.where(predicted == 1, 1.0, -1.0)).float().reshape(-1, 1)
    trained = compute_metrics(["precision", "recall", "f1"], logits, torch.from_numpy(truth))
    assert [trained[k] for k in ("precision", "recall", "f1")] == pytest.approx(
        [scores[k] for k in ("precision", "recall", "f1")])


def test_value_scores_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth, predicted = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    scores = value_scores(truth, predicted)
    assert scores["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert scores["r2"] == pytest.approx(r2_score(truth, predicted))
    assert scores["rmse"] == pytest.approx(root_mean_squared_error(truth, predicted))
    constant = np.ones((4, 1))
    assert value_scores(constant, constant)["r2"] == 1.0  # as scikit-learn says


def test_a_regression_run_and_its_residual_plot(tmp_path: Path) -> None:
    spec = dlspec.loads(HALFMOONS.replace("task: classification", "task: regression")
                        .replace("inputs:\n  x: {shape: [2]}", "inputs:\n  x: {shape: [10]}")
                        .replace("linear: 2}", "linear: 1}")
                        .replace("metrics: [accuracy, f1]", "metrics: [mae, rmse, r2]")
                        .replace("csv: moons.csv, target: side, normalize: true",
                                 "dataset: diabetes, normalize: true"))
    recorded = dlspec.train_spec(spec, tmp_path / "run").test
    assert recorded is not None
    evaluation = evaluate(tmp_path / "run")
    assert evaluation.metrics["mae"] == pytest.approx(recorded["mae"], rel=1e-5)
    assert evaluation.metrics["r2"] == pytest.approx(recorded["r2"], rel=1e-5)
    written = evaluation.write(tmp_path / "out")
    assert [p.name for p in written] == ["metrics.json", "residuals.png"]
    assert (tmp_path / "out" / "residuals.png").read_bytes().startswith(PNG)


def test_an_npz_of_inputs_and_labels(project: Path, tmp_path: Path) -> None:
    x, y = make_moons(50, noise=0.2, random_state=7)
    np.savez(tmp_path / "held.npz", x=x.astype(np.float32), y=y)
    model = project / "runs" / "halfmoons" / "model.onnx"
    evaluation = evaluate(model, tmp_path / "held.npz")
    predicted = Predictor(model).classify(x.astype(np.float32)).indices
    assert evaluation.metrics["accuracy"] == pytest.approx(float(np.mean(predicted == y)))
    np.savez(tmp_path / "bad.npz", x=x.astype(np.float32), y=y + 5)
    with pytest.raises(SpecError, match=r"bad.npz: array 'y': sample 0 .* is 5, not a class "
                       r"index of the model; the model has 2 classes"):
        evaluate(model, tmp_path / "bad.npz")


def test_a_folder_of_images_in_class_folders(tmp_path: Path) -> None:
    model = classifier(tmp_path / "classifier.onnx")
    pixels = np.random.default_rng(4).integers(0, 256, (6, 8, 8), dtype=np.uint8)
    truth = [0, 0, 1, 1, 2, 1]
    for i, (image, label) in enumerate(zip(pixels, truth, strict=True)):
        write_png(tmp_path / "images" / LABELS[label] / f"{i}.png", image)
    evaluation = evaluate(model, tmp_path / "images")
    predicted = reference(pixels[:, None].astype(np.float32) / 255).argmax(axis=1)
    assert evaluation.metrics["accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert evaluation.samples == 6
    write_png(tmp_path / "images" / "zebra" / "9.png", pixels[0])
    with pytest.raises(SpecError, match="the sub-folder 'zebra' is not a class of the model; "
                       "its classes are 'cat', 'dog', 'eel'"):
        evaluate(model, tmp_path / "images")


def test_labels_the_model_does_not_know_are_refused_where_they_are(project: Path,
                                                                  tmp_path: Path) -> None:
    rows = "a,b,side\n0.1,0.2,left\n0.3,0.1,zebra\n0.5,0.5,right\n0.2,0.2,yak\n"
    (tmp_path / "odd.csv").write_text(rows)
    for target in ("runs/halfmoons", "runs/halfmoons/model.onnx"):
        result = cli("evaluate", target, tmp_path / "odd.csv", "-o", tmp_path / "out",
                     cwd=project)
        assert result.returncode == 2
        assert result.stderr == (
            f"{tmp_path / 'odd.csv'}:3: column 'side' holds 'zebra', which is not a class "
            "of the model (and 1 other unknown label); its classes are 'left', 'right' (or "
            "their indices 0 to 1)\n")


def test_labelled_files_that_do_not_fit(project: Path, tmp_path: Path) -> None:
    model = project / "runs" / "halfmoons" / "model.onnx"
    (tmp_path / "nolabel.csv").write_text("a,b\n0.1,0.2\n")
    result = cli("evaluate", model, tmp_path / "nolabel.csv", "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "has no label column ('side', 'label', 'target', 'y')" in result.stderr
    named = cli("evaluate", model, project / "held_out.csv", "--label-column", "kind",
                "-o", tmp_path / "out")
    assert named.returncode == 2 and "has no column 'kind'" in named.stderr
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    npy = cli("evaluate", model, tmp_path / "x.npy", "-o", tmp_path / "out")
    assert npy.returncode == 2 and "no labels" in npy.stderr
    without = cli("evaluate", model, "-o", tmp_path / "out")
    assert without.returncode == 2 and "needs labelled DATA" in without.stderr
    (tmp_path / "file").write_text("")
    blocked = cli("evaluate", model, project / "held_out.csv", "-o", tmp_path / "file")
    assert blocked.returncode == 2 and "it is a file, not a folder" in blocked.stderr
    missing = cli("evaluate", tmp_path / "nothing.onnx", project / "held_out.csv",
                  "-o", tmp_path / "out")
    assert missing.returncode == 2


def test_a_run_whose_data_cannot_be_found(project: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli("evaluate", project / "runs" / "halfmoons", "-o", tmp_path / "out",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "give --spec-dir" in result.stderr
    evaluation = evaluate(project / "runs" / "halfmoons", options=Options(spec_dir=project))
    assert evaluation.samples == 60
    # the spec's folder as environment.json records it, from the folder training ran in
    run = tmp_path / "runs" / "moved"
    shutil.copytree(project / "runs" / "halfmoons", run)
    (tmp_path / "specs").mkdir()
    shutil.copy(project / "moons.csv", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    for spec_file, found in (("specs/halfmoons.yaml", True), (str(tmp_path / "specs/x.yaml"),
                                                             False), ("../specs/x.yaml", False)):
        (run / "environment.json").write_text(json.dumps({"spec_file": spec_file}))
        if found:
            assert evaluate(run).samples == 60
        else:  # a run folder cannot send the reader to an absolute path or out of the cwd
            with pytest.raises(FileError, match="give --spec-dir"):
                evaluate(run)


def test_predict_leaves_out_the_label_column_the_run_names(project: Path) -> None:
    result = cli("predict", project / "runs" / "halfmoons", project / "held_out.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "sample,class,probability,p_left,p_right"
    assert len(result.stdout.splitlines()) == 81
    assert result.stderr.startswith(f"{project / 'held_out.csv'}: left out column 'side', the "
                                    "labels (the model does not take them)\n")


def test_predict_keeps_a_column_named_like_labels_when_the_model_takes_it(
        tmp_path: Path) -> None:
    from dlspec.contract import TensorInfo
    from dlspec.runtime.readers import read_inputs

    (tmp_path / "x.csv").write_text("a,y\n1,2\n3,4\n")
    samples = read_inputs(tmp_path / "x.csv", [TensorInfo("x", (None, 2))], {},
                          label_columns=["y"])
    assert samples.labels is None and samples.arrays["x"].tolist() == [[1, 2], [3, 4]]
    taken = read_inputs(tmp_path / "x.csv", [TensorInfo("x", (None, 1))], {},
                        label_columns=["y"])
    assert taken.labels is not None and taken.labels.values == ["2", "4"]
    assert taken.arrays["x"].tolist() == [[1], [3]]
