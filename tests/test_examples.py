"""Examples stay runnable: each runs here (the small ones at full size, the others with fewer
epochs, runs or pictures) and shows its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def run_example(name: str, *args: str | Path) -> list[list[str]]:
    """Run examples/<name>/run.py; the rows of the table it prints, split on whitespace.

    One torch thread per example: the test runner already keeps both cores busy, and two
    processes each spinning two threads on two cores run many times slower. ROOT goes on
    the path so the example imports this checkout's dlspec however it is installed.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, f"examples/{name}/run.py", *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def table(lines: list[list[str]]) -> dict[str, dict[str, str]]:
    """The printed table keyed by its first column: header line first, one row a line."""
    header, *rows = lines
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows
            if len(row) == len(header)}


def test_perceptron_learns_and_nand_but_not_xor_while_the_mlp_learns_all() -> None:
    lines = run_example("perceptron_vs_mlp")
    rows = {line[0]: [float(v) for v in line[1:]] for line in lines[1:]}
    assert rows["and"] == [1.0, 1.0] and rows["nand"] == [1.0, 1.0]
    perceptron, mlp = rows["xor"]
    assert perceptron < 0.8 and mlp >= 0.95


def test_sigmoid_gradients_vanish_in_the_first_layers_and_relu_gradients_do_not(
        tmp_path: Path) -> None:
    rows = table(run_example("activations", "--epochs", "4", "--activations", "sigmoid",
                             "relu", "--out", tmp_path))
    sigmoid, relu = rows["sigmoid"], rows["relu"]
    assert float(sigmoid["grad_fc1"]) < float(relu["grad_fc1"]) / 1000
    assert float(sigmoid["fc1/fc8"]) < 1e-3 < 0.1 < float(relu["fc1/fc8"])
    assert float(sigmoid["test_acc"]) < 0.6 < 0.8 < float(relu["test_acc"])
    assert (tmp_path / "grad_norms.png").stat().st_size > 0


def test_the_transformer_and_not_the_rnn_solves_the_adding_problem_and_both_forecast(
        tmp_path: Path) -> None:
    lines = run_example("sequence_models", "--tasks", "adding", "sine", "--models", "rnn",
                        "transformer", "--epochs", "3", "--out", tmp_path)
    mse = {(row[0], row[1]): float(row[3]) for row in lines[1:] if len(row) == 6}
    baseline = mse["adding", "baseline"]
    assert mse["adding", "transformer"] < 0.05 < 0.1 < mse["adding", "rnn"]
    assert mse["adding", "rnn"] > 0.7 * baseline  # no better than always predicting 1.0
    for model in ("rnn", "transformer"):
        assert mse["sine", model] < mse["sine", "baseline"] / 3


def test_schedules_follow_their_learning_rate_curves(tmp_path: Path) -> None:
    rows = table(run_example("schedules", "--epochs", "10", "--schedules", "cosine",
                             "warmup_cosine", "one_cycle", "reduce_on_plateau",
                             "--out", tmp_path))
    lr = {name: (float(row["first_lr"]), float(row["max_lr"]), float(row["final_lr"]))
          for name, row in rows.items()}
    assert lr["cosine"][:2] == (0.1, 0.1) and lr["cosine"][2] < 0.005
    assert lr["warmup_cosine"][0] == 0.01 and lr["warmup_cosine"][1] == 0.1
    assert 0.15 < lr["one_cycle"][1] <= 0.2 and lr["one_cycle"][2] < 1e-4
    assert lr["reduce_on_plateau"][2] < 0.1
    assert all(float(row["test_acc"]) > 0.9 for row in rows.values())
    assert (tmp_path / "lr_schedules.png").stat().st_size > 0


def test_regularisers_shrink_the_weights_and_early_stopping_stops(tmp_path: Path) -> None:
    rows = table(run_example("regularization", "--epochs", "30", "--variants", "none",
                             "l2_loss", "early_stopping", "--out", tmp_path))
    none = rows["none"]
    assert float(none["train_acc"]) == 1.0 and float(none["gap"]) > 0.02  # it memorises
    assert float(rows["l2_loss"]["weight_norm"]) < 0.9 * float(none["weight_norm"])
    assert int(rows["early_stopping"]["epochs"]) < 30


def test_a_folder_of_pictures_trains_with_dlspec_build(tmp_path: Path) -> None:
    lines = run_example("image_folder", "--per-class", "50", "--epochs", "12",
                        "--out", tmp_path)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["eight", "five", "three"]
    assert len(list((tmp_path / "images" / "five").glob("*.png"))) == 50
    assert (tmp_path / "run" / "report.md").is_file()
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["accuracy"] > 0.5  # chance is 1/3
    assert lines[-1][:2] == ["test", "accuracy"]
