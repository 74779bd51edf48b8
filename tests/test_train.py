"""Training: the real CLI, run folders, determinism, resume, and the loop's guards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlspec
from conftest import ROOT
from dlspec.errors import SpecError, WorkError

MOONS = """\
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
optimizer: {type: adam, lr: 0.02}
schedule: {type: step, step_size: 2, gamma: 0.5}
data: {dataset: moons, num_samples: 300, noise: 0.1, split: {train: 0.6, val: 0.2, test: 0.2}}
train: {epochs: 4, batch_size: 32, seed: 3, metrics: [accuracy, f1]}
"""


def test_train_command_writes_the_run_folder(tmp_path: Path) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(MOONS)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(run), "--epochs", "6"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"trained {run}: test: loss ")
    # not a terminal: one plain line per epoch
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == [
        f"epoch {i}/6" for i in range(1, 7)]
    for name in ("model.safetensors", "checkpoint.safetensors", "checkpoint.state.pt",
                 "checkpoint.complete", "metrics.csv", "metrics.json", "curves.png",
                 "spec.resolved.yaml", "report.md"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 6
    assert [e["lr"] for e in metrics["epochs"]] == [0.02, 0.02, 0.01, 0.01, 0.005, 0.005]
    assert metrics["test"]["accuracy"] > 0.75  # chance is 0.5: the network learnt
    assert (run / "metrics.csv").read_text().splitlines()[0] == (
        "epoch,train_loss,train_accuracy,train_f1,lr,val_loss,val_accuracy,val_f1,seconds,"
        "samples_per_second")
    resolved = dlspec.load(run / "spec.resolved.yaml")  # the resolved spec is a valid spec
    assert resolved.train.epochs == 6 and resolved.optimizer.type == "adam"


def test_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    spec = dlspec.loads(MOONS)
    first = dlspec.train_spec(spec, tmp_path / "a")
    second = dlspec.train_spec(spec, tmp_path / "b")
    assert _without_timing(first.fit.history) == _without_timing(second.fit.history)
    assert first.test == second.test


def _without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")}
            for r in history]


def test_resume_continues_where_the_run_stopped(tmp_path: Path) -> None:
    spec = dlspec.loads(MOONS)
    whole = dlspec.train_spec(spec, tmp_path / "whole", epochs=4)
    dlspec.train_spec(spec, tmp_path / "parts", epochs=2)
    resumed = dlspec.train_spec(spec, tmp_path / "parts", epochs=4, resume=True)
    assert _without_timing(resumed.fit.history) == _without_timing(whole.fit.history)
    assert resumed.test == whole.test


def test_early_stopping_ends_the_run(tmp_path: Path) -> None:
    text = MOONS.replace("train: {epochs: 4,", "train: {epochs: 40, early_stopping: "
                         "{metric: val_accuracy, mode: max, patience: 2, min_delta: 0.5},")
    result = dlspec.train_spec(dlspec.loads(text), tmp_path / "run")
    assert len(result.fit.history) == 3  # epoch 1 sets the best; 2 and 3 don't beat it by 0.5
    assert result.fit.stop_reason.startswith("early stopping: val_accuracy did not improve")


def test_a_diverging_run_stops_with_a_clear_error(tmp_path: Path) -> None:
    text = MOONS.replace("{type: adam, lr: 0.02}", "{type: sgd, lr: 1.0e+30}")
    with pytest.raises(WorkError, match=r"the loss became (nan|inf) at epoch 1, batch \d+"):
        dlspec.train_spec(dlspec.loads(text), tmp_path / "run")


def test_data_that_does_not_fit_the_network_is_refused_before_training(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(MOONS.replace("{name: out, linear: 2}", "{name: out, linear: 3}"))
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{spec}:")
    assert "3" in result.stderr and "2" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_crop_larger_than_the_padded_image_is_refused_before_training(tmp_path: Path) -> None:
    text = """\
dlspec: 1
name: crop
inputs:
  image: {shape: [1, 8, 8]}
network: [flatten, {linear: 10}]
task: {type: classification, num_classes: 10}
data: {dataset: digits}
augment: {images: {random_crop: {size: [12, 12], padding: 1}}}
"""
    with pytest.raises(SpecError, match=r"crop.yaml:8:40: augment.images.random_crop.size: a "
                       r"12×12 crop does not fit input image \(1×8×8 padded by 1\); crop at "
                       r"most 10×10"):
        dlspec.train_spec(dlspec.loads(text, "crop.yaml"), tmp_path / "run")


def test_a_final_sigmoid_before_logit_loss_is_an_error(tmp_path: Path) -> None:
    text = MOONS.replace("  - {name: out, linear: 2}\n", "  - {name: out, linear: 1}\n"
                         "  - sigmoid\n").replace("loss: cross_entropy",
                                                  "loss: binary_cross_entropy")
    with pytest.raises(SpecError, match="ends in a sigmoid"):
        dlspec.train_spec(dlspec.loads(text, "s.yaml"), tmp_path / "run")


def test_build_trains_exports_and_draws_into_one_run_folder(tmp_path: Path) -> None:
    spec = tmp_path / "moons.yaml"
    spec.write_text(MOONS)
    result = subprocess.run([sys.executable, "-m", "dlspec", "build", str(spec), "--out",
                             str(tmp_path / "run"), "--epochs", "1"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"built {tmp_path / 'run'}: test:")
    assert f"export: {tmp_path / 'run' / 'model.onnx'} (" in result.stderr
    assert (tmp_path / "run" / "model.onnx").is_file()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Export: [model.onnx](model.onnx), verified in ONNX Runtime against PyTorch" in report
    assert "Diagram: [architecture.svg](architecture.svg)" in report
    assert (tmp_path / "run" / "architecture.svg").read_text().lstrip().startswith("<?xml")
    assert "digraph" in (tmp_path / "run" / "architecture.dot").read_text()


def test_augmentation_changes_training_batches_only_and_reproducibly() -> None:
    import torch

    from dlspec.data.augment import augment_batch
    from dlspec.spec.sections import AugmentConfig

    section = AugmentConfig.model_validate({
        "images": {"random_crop": {"padding": 2}, "horizontal_flip": 0.5, "rotation": 15,
                   "color_jitter": {"brightness": 0.2, "contrast": 0.2}},
        "sequences": {"noise": 0.1, "time_shift": 2, "time_scale": [0.8, 1.25]}})
    images, steps = torch.rand(16, 1, 8, 8), torch.rand(16, 12, 3)
    tokens = torch.randint(0, 5, (16, 12))

    def draw(seed: int) -> list[torch.Tensor]:
        return augment_batch([images, steps, tokens], section, torch.Generator().manual_seed(seed))

    first, again, other = draw(0), draw(0), draw(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert [t.shape for t in first] == [images.shape, steps.shape, tokens.shape]
    assert not torch.equal(first[0], images) and not torch.equal(first[1], steps)
    assert torch.equal(first[2], tokens)  # token ids are never changed
    assert not torch.equal(first[0], other[0])


def test_random_crop_with_padding_moves_the_image_by_at_most_the_padding() -> None:
    import torch

    from dlspec.data.augment import augment_batch
    from dlspec.spec.sections import AugmentConfig

    section = AugmentConfig.model_validate({"images": {"random_crop": {"padding": 1}}})
    image = torch.zeros(64, 1, 5, 5)
    image[:, :, 2, 2] = 1.0  # one bright pixel in the middle
    (out,) = augment_batch([image], section, torch.Generator().manual_seed(0))
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1], (out[:, 0] == 1).nonzero()[:, 2]
    assert set(rows.tolist()) == {1, 2, 3} and set(cols.tolist()) == {1, 2, 3}
    assert len(rows) == 64  # every crop keeps the pixel


def test_gradient_norms_are_logged_per_layer(tmp_path: Path) -> None:
    text = MOONS.replace("train: {epochs: 4,", "train: {epochs: 2, log_grad_norms: true,")
    result = dlspec.train_spec(dlspec.loads(text), tmp_path / "run")
    record = result.fit.history[-1]
    assert {k for k in record if k.startswith("grad_norm/")} == {"grad_norm/hidden",
                                                                 "grad_norm/out"}
    assert all(record[k] > 0 for k in ("grad_norm/hidden", "grad_norm/out"))
    assert "grad_norm/out" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]


def test_transfer_loads_matching_weights_freezes_and_reports(tmp_path: Path) -> None:
    source = dlspec.train_spec(dlspec.loads(MOONS), tmp_path / "source", epochs=2)
    trained_hidden = source.model.hidden.weight.detach().clone()
    # a new head of another width: the trunk loads, the head is skipped with its reason
    text = MOONS.replace("{name: out, linear: 2}", "{name: extra, linear: 4}\n  - relu\n"
                         "  - {name: out, linear: 2}") + \
        "transfer: {init_from: source, freeze: [hidden]}\n"  # read beside the spec
    spec_file = str(tmp_path / "spec.yaml")
    result = dlspec.train_spec(dlspec.loads(text, spec_file), tmp_path / "target", epochs=2)
    report = result.transfer
    assert report.loaded == ["hidden.weight", "hidden.bias", "out.bias"]  # same shapes
    assert report.skipped == {"extra.weight": "missing from the checkpoint",
                              "extra.bias": "missing from the checkpoint",
                              "out.weight": "shape (2, 16) in the checkpoint, (2, 4) here"}
    assert report.frozen == ["hidden.weight", "hidden.bias"]
    assert torch.equal(result.model.hidden.weight, trained_hidden)  # frozen: not trained
    assert "Transfer from" in (tmp_path / "target" / "report.md").read_text()
    strict = text.replace("freeze: [hidden]}", "freeze: [hidden], strict: true}")
    with pytest.raises(SpecError, match="3 selected tensors cannot be loaded"):
        dlspec.train_spec(dlspec.loads(strict, spec_file), tmp_path / "strict", epochs=1)
    typo = text.replace("freeze: [hidden]", "freeze: [hiden]")
    with pytest.raises(SpecError, match="pattern 'hiden' matches no layer; did you mean"):
        dlspec.train_spec(dlspec.loads(typo, spec_file), tmp_path / "typo", epochs=1)


def test_frozen_batch_norm_keeps_its_loaded_statistics(tmp_path: Path) -> None:
    with_norm = MOONS.replace("linear: 16}\n", "linear: 16}\n  - {name: norm, batchnorm1d}\n")
    source = dlspec.train_spec(dlspec.loads(with_norm), tmp_path / "source", epochs=1)
    loaded = source.model.norm.running_mean.clone()
    transfer = "transfer: {init_from: source, freeze: [%s]}\n"  # read beside the spec
    spec_file = str(tmp_path / "spec.yaml")
    frozen = dlspec.train_spec(dlspec.loads(with_norm + transfer % "norm", spec_file),
                               tmp_path / "frozen", epochs=2)
    assert torch.equal(frozen.model.norm.running_mean, loaded)  # weights and statistics kept
    assert frozen.model.norm.num_batches_tracked == source.model.norm.num_batches_tracked
    trained = dlspec.train_spec(dlspec.loads(with_norm + transfer % "hidden", spec_file),
                                tmp_path / "trained", epochs=2)
    assert not torch.equal(trained.model.norm.running_mean, loaded)  # not frozen: it learns


SLOW_MOONS = MOONS.replace("num_samples: 300", "num_samples: 6000").replace(
    "train: {epochs: 4,", "train: {epochs: 8,")


def _start_and_wait_for_epoch(spec: Path, run: Path, epoch: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                                str(run)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stderr is not None
    for line in process.stderr:  # one line per finished epoch
        if line.startswith(f"epoch {epoch}/"):
            return process
    raise AssertionError(f"the run ended before epoch {epoch}: {process.wait()}")


def test_a_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    import signal

    spec = tmp_path / "moons.yaml"
    spec.write_text(SLOW_MOONS)
    whole = dlspec.train_spec(dlspec.load(spec), tmp_path / "whole")
    process = _start_and_wait_for_epoch(spec, tmp_path / "killed", 3)
    process.send_signal(signal.SIGKILL)  # no chance to clean up: only complete epochs count
    process.wait()
    resumed = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                              str(tmp_path / "killed"), "--resume"], capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    # epoch 2's checkpoint was written before epoch 3 began (epoch 3's maybe too): no restart
    assert int(resumed.stderr.split("/")[0].split()[-1]) in (3, 4)
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert _without_timing(metrics["epochs"]) == _without_timing(whole.fit.history)
    assert metrics["test"] == pytest.approx(whole.test, abs=1e-6)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path) -> None:
    import signal

    spec = tmp_path / "moons.yaml"
    # far more epochs than the run lives: a loaded machine must not let it end on its own
    # before the signal arrives (it did, at 8 epochs of a fraction of a second each)
    spec.write_text(SLOW_MOONS.replace("train: {epochs: 8,", "train: {epochs: 1000,"))
    process = _start_and_wait_for_epoch(spec, tmp_path / "run", 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted during epoch" in stderr and "--resume" in stderr


@pytest.mark.slow
def test_compiled_training_matches_eager_training(tmp_path: Path) -> None:
    eager = dlspec.train_spec(dlspec.loads(MOONS), tmp_path / "eager", epochs=2)
    text = MOONS.replace("train: {epochs: 4,", "train: {epochs: 4, compile: true,")
    compiled = dlspec.train_spec(dlspec.loads(text), tmp_path / "compiled", epochs=2)
    for ours, theirs in zip(compiled.fit.history, eager.fit.history, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())


def test_ema_averages_the_weights_that_are_evaluated_and_saved(tmp_path: Path) -> None:
    plain = dlspec.train_spec(dlspec.loads(MOONS), tmp_path / "plain", epochs=3)
    text = MOONS.replace("train: {epochs: 4,", "train: {epochs: 4, ema: 0.9,")
    averaged = dlspec.train_spec(dlspec.loads(text), tmp_path / "ema", epochs=3)
    # the average never feeds back into training: the same steps, different evaluations
    assert [r["train_loss"] for r in averaged.fit.history] == \
        [r["train_loss"] for r in plain.fit.history]
    assert [r["val_loss"] for r in averaged.fit.history] != \
        [r["val_loss"] for r in plain.fit.history]
    assert not torch.equal(averaged.model.out.weight, plain.model.out.weight)


def test_hue_jitter_matches_colorsys_and_keeps_gray_pixels() -> None:
    import colorsys

    from dlspec.data.augment import _shift_hue

    image = torch.rand(3, 3, 4, 4)
    shifted = _shift_hue(image, torch.tensor([0.0, 0.25, -0.4]))
    assert torch.allclose(shifted[0], image[0], atol=1e-6)  # no shift: unchanged
    for sample, turn in ((1, 0.25), (2, -0.4)):
        for i, j in ((0, 0), (3, 2)):
            h, s, v = colorsys.rgb_to_hsv(*image[sample, :, i, j].tolist())
            expected = colorsys.hsv_to_rgb((h + turn) % 1.0, s, v)
            assert shifted[sample, :, i, j].tolist() == pytest.approx(expected, abs=1e-5)
    gray = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(_shift_hue(gray, torch.tensor([0.3])), gray)


def test_image_augmentation_works_on_pixel_values_not_normalised_ones() -> None:
    import torch

    from dlspec.data.augment import augment_batch
    from dlspec.spec.sections import AugmentConfig

    config = AugmentConfig.model_validate({"images": {"color_jitter": {"brightness": 0.5}}})
    stats = {"mean": [0.5], "std": [0.25]}
    normalised = torch.zeros(64, 1, 4, 4)  # every pixel 0.5, the mean
    (out,) = augment_batch([normalised], config, torch.Generator().manual_seed(0), [stats])
    pixels = out * 0.25 + 0.5
    factors = pixels[:, 0, 0, 0] / 0.5  # brightness scales the pixel values themselves
    assert torch.allclose(pixels, factors[:, None, None, None] * 0.5 * torch.ones_like(out))
    assert factors.min() >= 0.5 and factors.max() <= 1.5 and factors.std() > 0.1


def test_gradient_norms_are_grouped_by_layer_with_repeats_apart() -> None:
    from dlspec.train.gradnorms import _layer_group

    assert _layer_group("conv1.weight") == "conv1"
    assert _layer_group("fc.0.weight") == "fc.0" and _layer_group("fc.1.bias") == "fc.1"
    assert _layer_group("layer1.first.residual.conv1.weight") == "layer1"
