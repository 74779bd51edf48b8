"""Loggers (`train.log`): TensorBoard event files and MLflow runs, read back with the real
packages; a missing package refused before training; runs that fail or resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlspec
from dlspec.errors import Interrupted
from dlspec.train.loggers import spec_parameters, tensorboard_tag
from dlspec.train.outputs import curve_panels
from dlspec.train.resume import trained_with

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

SPEC = """\
dlspec: 1
name: moons
inputs:
  x: {shape: [2]}
network:
  - {name: hidden, linear: 16}
  - relu
  - {name: out, linear: 2}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 0.02, betas: [0.9, 0.99]}
schedule: {type: step, step_size: 1, gamma: 0.5}
data: {dataset: moons, num_samples: 200, noise: 0.1, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 2, batch_size: 32, seed: 3, metrics: [accuracy, f1], LOG}
"""


def spec_text(log: str) -> str:
    return SPEC.replace("LOG", f"log: {log}")


def without_tracking_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in a TensorBoard run folder: (step, value) pairs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def mlflow_run(run_dir: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    record = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    return client, client.get_run(record["run_id"])


def test_a_two_epoch_run_logs_to_tensorboard_and_mlflow_through_the_cli(
        tmp_path: Path) -> None:
    (tmp_path / "moons.yaml").write_text(spec_text("[tensorboard, mlflow]"))
    done = subprocess.run([sys.executable, "-m", "dlspec", "train", "moons.yaml", "--out",
                           "run"], cwd=tmp_path, capture_output=True, text=True,
                          env=without_tracking_env())
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "run"
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    columns = rows[0].split(",")
    assert columns[:5] == ["epoch", "train_loss", "train_accuracy", "train_f1", "lr"]

    # TensorBoard: train_X and val_X are tag X of runs train and val, as Keras writes them
    train, val = scalars(run_dir / "tensorboard" / "train"), scalars(run_dir / "tensorboard"
                                                                      / "val")
    assert {"loss", "accuracy", "f1", "lr", "seconds", "samples_per_second"} <= set(train)
    assert {"loss", "accuracy", "f1"} == set(val)
    assert [step for step, _ in val["loss"]] == [1, 2]
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [v for _, v in val["loss"]] == pytest.approx(
        [e["val_loss"] for e in history["epochs"]])
    assert [v for _, v in train["lr"]] == pytest.approx([0.02, 0.01])
    test = scalars(run_dir / "tensorboard" / "test")
    assert test["accuracy"] == [(2, pytest.approx(history["test"]["accuracy"]))]

    # MLflow: MLflow's own default store in the current folder, the run named after the
    # folder in the spec's experiment
    client, run = mlflow_run(run_dir)
    assert (tmp_path / "mlruns").is_dir()
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "moons"
    params = run.data.params
    assert params["optimizer.lr"] == "0.02" and params["optimizer.type"] == "adam"
    assert params["optimizer.betas"] == "[0.9, 0.99]" and params["train.batch_size"] == "32"
    assert params["train.epochs"] == "2" and params["data.split.val"] == "0.2"
    assert not any(key.startswith(("network", "train.log.")) for key in params)
    for column in columns[1:]:  # every metrics.csv column, each epoch
        steps = client.get_metric_history(run.info.run_id, column)
        assert [m.step for m in steps] == [1, 2], column
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == \
        pytest.approx([e["val_accuracy"] for e in history["epochs"]])
    assert run.data.metrics["test_accuracy"] == pytest.approx(history["test"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.csv", "metrics.json", "curves.png", "report.md",
            "spec.resolved.yaml", "data.json"} <= artifacts


def test_a_missing_package_is_refused_at_train_log_before_training(tmp_path: Path) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(spec_text("{tensorboard: , mlflow: {experiment: demo}}"))
    hide = ("import runpy, sys; sys.modules['mlflow'] = None; "
            f"sys.argv = ['dlspec', 'train', {str(spec)!r}, '--out', {str(tmp_path / 'run')!r}];"
            " runpy.run_module('dlspec', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{spec}:14:" in done.stderr and "train.log: mlflow needs the mlflow package, " \
        "which is not installed; pip install 'dlspec[mlflow]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()  # nothing trained
    assert not (tmp_path / "mlruns").exists()


def test_tracking_uri_from_the_environment_and_an_experiment_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store" / "runs.db"
    store.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    spec = dlspec.loads(spec_text("{mlflow: {experiment: moons-sweep}}"))
    dlspec.train_spec(spec, tmp_path / "first", epochs=1)
    client, run = mlflow_run(tmp_path / "first")
    assert store.is_file() and not (tmp_path / "mlflow.db").exists()
    assert client.get_experiment(run.info.experiment_id).name == "moons-sweep"
    assert run.data.params["train.epochs"] == "1"  # the epochs the run trained


def test_resume_goes_on_in_the_same_mlflow_run(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    spec = dlspec.loads(spec_text("[mlflow, tensorboard]"))
    dlspec.train_spec(spec, tmp_path / "run")
    first = json.loads((tmp_path / "run" / "mlflow.json").read_text())["run_id"]
    dlspec.train_spec(spec, tmp_path / "run", epochs=3, resume=True)
    client, run = mlflow_run(tmp_path / "run")
    assert run.info.run_id == first and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(first, "val_loss")] == [1, 2, 3]
    assert [step for step, _ in scalars(tmp_path / "run" / "tensorboard" / "val")["loss"]] \
        == [1, 2, 3]


class StopAtEpoch:
    """Callbacks that press Ctrl-C as epoch 2 starts."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    def on_batch(self, batch: int, loss: float, samples: int) -> None: ...

    def on_epoch_end(self, record: dict[str, float]) -> None: ...


def test_an_interrupted_run_ends_its_mlflow_run_as_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    spec = dlspec.loads(spec_text("[tensorboard, mlflow]"))
    with pytest.raises(Interrupted):
        dlspec.train_spec(spec, tmp_path / "run", callbacks=StopAtEpoch())
    client, run = mlflow_run(tmp_path / "run")
    assert run.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1]
    assert [step for step, _ in scalars(tmp_path / "run" / "tensorboard" / "val")["loss"]] \
        == [1]


def test_loggers_do_not_change_what_a_checkpoint_was_trained_with() -> None:
    plain = dlspec.loads(SPEC.replace(", LOG", ""))
    logged = dlspec.loads(spec_text("[tensorboard, mlflow]"))
    assert trained_with(plain, 2, {}) == trained_with(logged, 2, {})


def test_spec_parameters_flatten_the_training_sections() -> None:
    spec = dlspec.loads(spec_text("mlflow").replace(
        "schedule: {type: step, step_size: 1, gamma: 0.5}",
        "schedule: {type: sequential, phases: [{schedule: constant, epochs: 1}, "
        "{schedule: cosine}]}"))
    params = spec_parameters(spec, 7)
    assert params["train.epochs"] == "7" and params["loss.type"] == "cross_entropy"
    assert params["schedule.phases[0].schedule.type"] == "constant"
    assert params["schedule.phases[1].schedule.type"] == "cosine"
    assert params["train.deterministic"] == "false" and "train.ema" not in params  # unset
    assert all(len(value) <= 500 for value in params.values())


def test_columns_map_to_tensorboard_runs_and_curve_panels() -> None:
    assert tensorboard_tag("val_price_mae") == ("val", "price_mae")
    assert tensorboard_tag("train_loss") == ("train", "loss")
    assert tensorboard_tag("grad_norm/out") == ("train", "grad_norm/out")
    columns = ["epoch", "train_loss", "train_price_loss", "train_accuracy", "lr", "val_loss",
               "val_price_loss", "val_accuracy", "val_iou", "seconds", "grad_norm/out"]
    assert curve_panels(columns) == [
        ("loss", ["train_loss", "val_loss"]),
        ("price_loss", ["train_price_loss", "val_price_loss"]),
        ("accuracy", ["train_accuracy", "val_accuracy"]), ("iou", ["val_iou"]),
        ("learning rate", ["lr"]), ("gradient norm per layer", ["grad_norm/out"])]


def test_a_run_trained_anew_replaces_its_tensorboard_curves_and_build_files_reach_mlflow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlspec.train.loggers import log_run_files

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    spec = dlspec.loads(spec_text("[tensorboard, mlflow]"))
    dlspec.train_spec(spec, tmp_path / "run")
    again = dlspec.train_spec(spec, tmp_path / "run", epochs=1, overwrite=True)
    val = scalars(tmp_path / "run" / "tensorboard" / "val")["loss"]  # the old epochs dropped
    assert val == [(1, pytest.approx(again.fit.history[0]["val_loss"]))]
    (tmp_path / "run" / "model.onnx").write_bytes(b"onnx")  # as `dlspec build` exports it
    assert log_run_files(spec, tmp_path / "run")
    client, run = mlflow_run(tmp_path / "run")
    assert "model.onnx" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert not log_run_files(dlspec.loads(SPEC.replace(", LOG", "")), tmp_path / "run")
