"""Examples stay runnable: each runs here (the small ones at full size, the others with fewer
epochs, runs or pictures) and shows its result."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from safetensors.numpy import load_file

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


def test_the_transformer_and_not_the_rnn_solves_the_adding_problem_and_all_forecast(
        tmp_path: Path) -> None:
    lines = run_example("sequence_models", "--tasks", "adding", "sine", "--models", "rnn",
                        "bilstm", "transformer", "--epochs", "3", "--out", tmp_path)
    rows = {(row[0], row[1]): row for row in lines[1:] if len(row) == 7}
    mse = {key: float(row[3]) for key, row in rows.items()}
    baseline = mse["adding", "baseline"]
    assert mse["adding", "transformer"] < 0.05 < 0.1 < mse["adding", "rnn"]
    assert mse["adding", "rnn"] > 0.7 * baseline  # no better than always predicting 1.0
    for model in ("rnn", "bilstm", "transformer"):
        assert mse["sine", model] < mse["sine", "baseline"] / 3
        # seconds per epoch from metrics.csv: 3 of them fit in the run's wall time
        seconds, per_epoch = float(rows["sine", model][5]), float(rows["sine", model][6])
        assert 0 < 3 * per_epoch < seconds
    assert rows["sine", "baseline"][6] == "-"


def test_schedules_follow_their_learning_rate_curves(tmp_path: Path) -> None:
    rows = table(run_example("schedules", "--epochs", "10", "--schedules", "step",
                             "exponential", "polynomial", "cosine", "warmup_cosine", "one_cycle",
                             "cyclic", "reduce_on_plateau", "--out", tmp_path))
    lr = {name: (float(row["first_lr"]), float(row["max_lr"]), float(row["final_lr"]))
          for name, row in rows.items()}
    assert lr["step"] == (0.1, 0.1, 0.1)  # step_size 10: the drop comes after epoch 10
    # printed to 3 digits: 0.1 × 0.85⁹ after 9 steps; (1 - 9/10)² of the base
    assert math.isclose(lr["exponential"][2], 0.1 * 0.85 ** 9, rel_tol=0.01)
    assert math.isclose(lr["polynomial"][2], 0.1 * (1 / 10) ** 2, rel_tol=0.01)
    assert lr["cosine"][:2] == (0.1, 0.1) and lr["cosine"][2] < 0.005
    assert lr["warmup_cosine"][0] == 0.01 and lr["warmup_cosine"][1] == 0.1
    assert 0.15 < lr["one_cycle"][1] <= 0.2 and lr["one_cycle"][2] < 1e-4
    assert lr["cyclic"][0] == 0.005 and lr["cyclic"][1] == 0.2  # up in 5 epochs, then down
    assert lr["reduce_on_plateau"][2] < 0.1
    assert all(float(row["test_acc"]) > 0.9 for row in rows.values())
    assert all(float(row["train_loss"]) < 0.1 for row in rows.values())
    assert (tmp_path / "lr_and_loss.png").stat().st_size > 0


def test_noisy_labels_are_memorised_and_l1_and_early_stopping_resist(tmp_path: Path) -> None:
    rows = table(run_example("regularization", "--epochs", "30", "--variants", "none",
                             "l1_loss", "early_stopping", "--out", tmp_path))
    none, l1, early = rows["none"], rows["l1_loss"], rows["early_stopping"]
    # 159 of the 540 training labels are wrong: above 70.6% it is fitting wrong ones
    assert float(none["train_acc"]) > 0.78 and float(none["gap"]) > 0.2
    assert float(l1["gap"]) < float(none["gap"]) / 2
    assert float(l1["zero%"]) > 20 * float(none["zero%"])  # L1 drives weights to zero
    assert float(l1["weight_norm"]) < 0.7 * float(none["weight_norm"])
    assert int(early["epochs"]) < 30 and float(early["gap"]) < float(none["gap"]) / 2
    assert float(early["test_acc"]) > float(none["test_acc"])  # test labels are clean


def test_a_folder_of_pictures_trains_with_dlspec_build_and_predicts_new_ones(
        tmp_path: Path) -> None:
    lines = run_example("image_folder", "--per-class", "50", "--epochs", "20",
                        "--new-per-class", "20", "--out", tmp_path)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["eight", "five", "three"]
    assert len(list((tmp_path / "images" / "five").glob("*.png"))) == 50
    assert (tmp_path / "run" / "report.md").is_file()
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["accuracy"] > 0.5  # chance is 1/3
    predictions = (tmp_path / "preds.csv").read_text().splitlines()
    assert predictions[0].startswith("sample,class,probability,p_eight,p_five,p_three")
    assert len(predictions) == 1 + 60
    assert lines[-1][:2] == ["predict", "accuracy"]
    right, total = map(int, lines[-1][2].split("/"))
    assert total == 60 and right / total > 0.6  # new pictures; chance is 1/3


def test_lenet5_builds_and_predicts_held_out_pngs_as_it_tested(tmp_path: Path) -> None:
    lines = run_example("lenet5", "--epochs", "3", "--show", "5", "--out", tmp_path)
    built = next(line for line in lines if line[:2] == ["test", "accuracy"])
    assert float(built[2]) > 0.5  # chance is 0.1
    assert (tmp_path / "run" / "model.onnx").is_file()
    assert len(list((tmp_path / "held_out").glob("*.png"))) == 180  # the spec's test split
    rows = [line for line in lines if line and line[0].startswith("digit_")]
    assert len(rows) == 5 and all(0 <= int(row[2]) <= 9 for row in rows)
    assert lines[-1][:2] == ["predict", "accuracy"]
    right, total = map(int, lines[-1][2].split("/"))
    assert total == 180
    # ONNX Runtime on the PNG files agrees with PyTorch's evaluation of the same digits
    assert abs(right / total - float(built[2])) <= 2 / 180


def test_a_pretrained_trunk_beats_training_from_scratch_on_few_samples(tmp_path: Path) -> None:
    rows = table(run_example("transfer_learning", "--seeds", "1", "--pretrain-epochs", "5",
                             "--epochs", "5", "--out", tmp_path))
    assert float(rows["pretrain"]["test_acc"]) > 0.9
    assert {int(rows[name]["train_n"]) for name in ("scratch", "finetune")} == {45}
    total = int(rows["scratch"]["trainable"])
    assert int(rows["finetune"]["trainable"]) == total
    assert int(rows["freeze_low"]["trainable"]) < total
    assert int(rows["freeze_all"]["trainable"]) == 64 * 5 + 5  # the new head alone
    assert float(rows["finetune"]["test_acc"]) > float(rows["scratch"]["test_acc"]) + 0.05
    # frozen layers keep task A's weights exactly; the head is new
    before = load_file(tmp_path / "pretrain" / "model.safetensors")
    after = load_file(tmp_path / "seed0" / "freeze_all" / "model.safetensors")
    for name in ("stem.weight", "layer3.residual.conv2.weight", "layer3.residual.bn2.weight"):
        assert (before[name] == after[name]).all()
    assert not (before["head.weight"] == after["head.weight"]).all()


def test_the_gan_example_builds_a_spec_and_reports_its_numbers(tmp_path: Path) -> None:
    rows = table(run_example("gans", "--specs", "wgan_gp", "--epochs", "3", "--out", tmp_path))
    row = rows["wgan_gp"]
    assert row["epochs"] == "3" and float(row["seconds"]) > 0
    measured = dict(pair.split("=") for pair in row["numbers"].split(","))
    assert set(measured) == {"modes_covered", "high_quality_fraction"}
    assert 0 <= float(measured["modes_covered"]) <= 8
    assert (tmp_path / "pictures" / "wgan_gp.png").is_file()
    assert (tmp_path / "wgan_gp" / "model.onnx").is_file()  # built: exported too
