"""Adversarial training (`task: gan`): the objectives' arithmetic, the loop, the run folder
through the real CLI, determinism and resume, and what a GAN learns on 8 Gaussians."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import dlspec
from conftest import ROOT
from dlspec.errors import SpecError, WorkError
from dlspec.spec.sections import (
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinGpLoss,
    WassersteinLoss,
)
from dlspec.train.gan_objectives import GanObjective, gradient_penalty
from dlspec.train.gan_outputs import Modes

# a small 8-Gaussians GAN: 1600 points, batches of 100 → 16 discriminator steps an epoch
TOY = """\
dlspec: 1
name: toy
networks:
  generator:
    inputs:
      z: {{shape: [2]{distribution}}}
    network:
      - {{name: hidden, linear: 32}}
      - relu
      - {{name: point, linear: 2}}
  discriminator:
    inputs:
      point: {{shape: [2]}}
    network:
      - {{name: hidden, linear: 32}}
      - relu
      - {{name: score, linear: 1}}
task: gan
loss: {loss}
optimizer:
  generator: {{type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}}
  discriminator: {{type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}}
data: {{dataset: eight_gaussians, num_samples: 1600, split: {{train: 1.0}}}}
train: {{epochs: 3, batch_size: 100, seed: 0{train}}}
"""


def toy(loss: str = "wasserstein_gp", train: str = "", distribution: str = "") -> str:
    """The toy spec with another objective, train options (`, n_critic: 2`) or latent."""
    return TOY.format(loss=loss, train=train, distribution=distribution)


def train(text: str, out: Path, **options: object) -> object:
    spec = dlspec.loads(text, str(out.parent / "spec.yaml"))
    return dlspec.train_spec(spec, out, **options)


# --------------------------------------------------------------------------- objectives

ZERO = torch.zeros(4, 1)


class Constant(torch.nn.Module):
    """A 'discriminator' that scores every sample with the same value."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 1), self.value)


@pytest.mark.parametrize(("section", "d_loss", "g_loss"), [
    (MinimaxLoss(), 2 * math.log(2), -math.log(2)),   # log(1 - σ(0)) = -log 2
    (NonSaturatingLoss(), 2 * math.log(2), math.log(2)),  # -log σ(0) = log 2
    (LeastSquaresLoss(), 0.5, 0.5),
    (HingeLoss(), 2.0, 0.0),
    (WassersteinLoss(), 0.0, 0.0),
])
def test_objectives_at_a_score_of_zero(section: object, d_loss: float, g_loss: float) -> None:
    objective = GanObjective(section)  # type: ignore[arg-type]
    step = objective.discriminator_loss(Constant(0.0), ZERO, ZERO)
    assert step.loss.item() == pytest.approx(d_loss)
    assert objective.generator_loss(torch.zeros(4, 1)).item() == pytest.approx(g_loss)


def test_the_wasserstein_estimate_is_the_gap_between_real_and_fake_scores() -> None:
    critic = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        critic.weight.fill_(2.0)
    real, fake = torch.full((8, 1), 3.0), torch.full((8, 1), 1.0)
    step = GanObjective(WassersteinLoss()).discriminator_loss(critic, real, fake)
    assert step.wasserstein == pytest.approx(4.0)  # 2·3 - 2·1
    assert step.loss.item() == pytest.approx(-4.0)
    assert GanObjective(NonSaturatingLoss()).discriminator_loss(critic, real, fake) \
        .wasserstein is None


def test_the_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    # D(x) = w·x has gradient w everywhere: the penalty is (‖w‖ - 1)², whatever x̂ is
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))  # ‖w‖ = 5
    penalty = gradient_penalty(critic, torch.randn(16, 3), torch.randn(16, 3))
    assert penalty.item() == pytest.approx(16.0)
    penalty.backward()  # the penalty is differentiable in the critic's weights
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
    step = GanObjective(WassersteinGpLoss(gp_weight=0.5)).discriminator_loss(
        critic, torch.randn(16, 3), torch.randn(16, 3))
    assert step.penalty == pytest.approx(16.0)


def test_mode_coverage_counts_points_near_the_modes() -> None:
    # σ is the per-axis spread around the modes' centres (0, 0) and (10, 0), pooled: 0.05
    real = torch.tensor([[-0.05, -0.05], [0.05, 0.05], [9.95, 0.05], [10.05, -0.05]])
    modes = Modes.of(real, torch.tensor([0, 0, 1, 1]))
    assert modes is not None and modes.sigma == pytest.approx(0.05)
    on_one = np.array([[0.14, 0.0]] * 10)  # within 3σ = 0.15
    assert modes.coverage(on_one) == {"modes_covered": 1.0, "high_quality_fraction": 1.0}
    assert modes.coverage(on_one + [0.02, 0.0])["high_quality_fraction"] == 0.0
    both = np.array([[0.0, 0.1]] * 5 + [[10.0, 0.0]] * 4 + [[5.0, 0.0]])
    assert modes.coverage(both) == {"modes_covered": 2.0, "high_quality_fraction": 0.9}
    assert Modes.of(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)) is None


# --------------------------------------------------------------------------- the loop


def test_train_command_writes_a_gan_run_folder(tmp_path: Path) -> None:
    spec = tmp_path / "toy.yaml"
    spec.write_text(toy())
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(run)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"trained {run}: last epoch: d_loss ")
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == [
        f"epoch {i}/3" for i in range(1, 4)]
    for name in ("model.safetensors", "discriminator.safetensors", "checkpoint.safetensors",
                 "checkpoint.state.pt", "checkpoint.complete", "metrics.csv", "metrics.json",
                 "curves.png", "spec.resolved.yaml", "report.md", "data.json"):
        assert (run / name).is_file(), name
    pictures = sorted(p.name for p in (run / "samples").iterdir())
    assert pictures == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    assert Image.open(run / "samples" / "epoch_003.png").size == (480, 480)
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert len(epochs) == 3
    for key in ("d_loss", "g_loss", "wasserstein_estimate", "gradient_penalty",
                "lr/generator", "lr/discriminator", "modes_covered", "high_quality_fraction"):
        assert all(math.isfinite(e[key]) for e in epochs), key
    assert set(load_file(run / "model.safetensors")) == {
        "hidden.weight", "hidden.bias", "point.weight", "point.bias"}  # the generator
    assert json.loads((run / "data.json").read_text())["generator"]["latent"] == {"z": "normal"}
    assert "generator against discriminator (wasserstein_gp)" in (run / "report.md").read_text()
    dlspec.load(run / "spec.resolved.yaml")


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "least_squares", "hinge",
                                  "wasserstein", "wasserstein_gp"])
def test_every_objective_trains(loss: str, tmp_path: Path) -> None:
    result = train(toy(loss), tmp_path / "run", epochs=2)
    history = result.fit.history  # type: ignore[attr-defined]
    assert [int(e["epoch"]) for e in history] == [1, 2]
    assert all(math.isfinite(e["d_loss"]) and math.isfinite(e["g_loss"]) for e in history)
    assert ("wasserstein_estimate" in history[0]) == loss.startswith("wasserstein")
    assert ("gradient_penalty" in history[0]) == (loss == "wasserstein_gp")
    before = load_file(tmp_path / "run" / "discriminator.safetensors")
    if loss == "wasserstein":  # the critic's weights are clipped to ±0.01 after every step
        assert max(t.abs().max().item() for t in before.values()) <= 0.01 + 1e-7
    else:
        assert max(t.abs().max().item() for t in before.values()) > 0.01


def test_n_critic_discriminator_steps_per_generator_step(tmp_path: Path) -> None:
    train(toy(train=", n_critic: 4"), tmp_path / "run", epochs=2)
    state = torch.load(tmp_path / "run" / "checkpoint.state.pt", weights_only=True)
    steps = {name: next(iter(opt["state"].values()))["step"].item()
             for name, opt in state["optimizers"].items()}
    assert steps == {"discriminator": 32, "generator": 8}  # 2 epochs × 16 batches


def test_each_network_has_its_own_schedule(tmp_path: Path) -> None:
    text = toy().replace("task: gan", "task: gan\nschedule: {generator: {type: step, "
                         "step_size: 1, gamma: 0.5}}")
    result = train(text, tmp_path / "run", epochs=3)
    history = result.fit.history  # type: ignore[attr-defined]
    assert [e["lr/generator"] for e in history] == [1e-3, 5e-4, 2.5e-4]
    assert [e["lr/discriminator"] for e in history] == [1e-3] * 3


def test_same_seed_same_run_and_resume_continues_exactly(tmp_path: Path) -> None:
    text = toy(train=", ema: 0.9")
    train(text, tmp_path / "a", epochs=3)
    train(text, tmp_path / "b", epochs=3)
    train(text, tmp_path / "c", epochs=2)
    train(text, tmp_path / "c", epochs=3, resume=True)
    a, b, c = (load_file(tmp_path / x / "model.safetensors") for x in "abc")
    for name in a:
        assert torch.equal(a[name], b[name]) and torch.equal(a[name], c[name]), name
    history = [json.loads((tmp_path / x / "metrics.json").read_text())["epochs"] for x in "ac"]
    assert [e["d_loss"] for e in history[0]] == [e["d_loss"] for e in history[1]]


def test_ema_keeps_an_average_of_the_generator(tmp_path: Path) -> None:
    train(toy(train=", ema: 0.9"), tmp_path / "ema", epochs=1)
    train(toy(), tmp_path / "plain", epochs=1)
    for folder, averaged in (("ema", True), ("plain", False)):
        kept = load_file(tmp_path / folder / "model.safetensors")
        latest = load_file(tmp_path / folder / "checkpoint.safetensors")
        same = all(torch.equal(kept[k], latest[f"generator.{k}"]) for k in kept)
        assert same != averaged, folder


def test_uniform_latent_noise(tmp_path: Path) -> None:
    result = train(toy(distribution=", distribution: uniform"), tmp_path / "run", epochs=1)
    assert result.info.generator["latent"] == {"z": "uniform"}  # type: ignore[attr-defined]


def test_a_diverging_gan_stops_naming_epoch_and_batch(tmp_path: Path) -> None:
    text = toy("least_squares").replace("{type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}",
                                        "{type: sgd, lr: 1.0e+30}")
    spec = tmp_path / "diverge.yaml"
    spec.write_text(text)
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "loss became" in result.stderr and "at epoch 1, batch" in result.stderr
    assert "no epoch had finished, so no weights or outputs were written" in result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "report.md").exists()
    with pytest.raises(WorkError, match="loss became"):
        train(text, tmp_path / "again")


def test_a_nan_stop_writes_the_run_folder_of_the_last_complete_epoch(tmp_path: Path) -> None:
    # epoch 1 learns at lr 1e-3; then the learning rate grows 1e12-fold and the losses explode
    text = toy("least_squares", train=", ema: 0.9").replace(
        "{type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}", "{type: sgd, lr: 1.0e-3}") \
        + "schedule: {type: exponential, gamma: 1.0e+12}\n"
    spec, run = tmp_path / "diverge.yaml", tmp_path / "run"
    spec.write_text(text)
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(run)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "loss became" in message and "at epoch 2, batch" in message, message
    assert f"{run} holds the weights of epoch 1, the last complete one; lower optimizer.lr " \
        "and train again with --overwrite" in message
    assert "Traceback" not in result.stderr
    for name in ("model.safetensors", "discriminator.safetensors", "metrics.csv",
                 "metrics.json", "curves.png", "data.json", "spec.resolved.yaml"):
        assert (run / name).is_file(), name
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1]
    report = (run / "report.md").read_text()
    assert "The run stopped: the" in report and "at epoch 2, batch" in report
    assert "those of epoch 1, the last complete one" in report
    # the weights of epoch 1 (as checkpointed at its end), not the diverged ones of epoch 2
    checkpoint = load_file(run / "checkpoint.safetensors")
    discriminator = load_file(run / "discriminator.safetensors")
    assert all(torch.equal(v, checkpoint[f"discriminator.{k}"]) for k, v in
               discriminator.items())
    state = torch.load(run / "checkpoint.state.pt", weights_only=True)
    average = {k.removeprefix("module."): v for k, v in state["average"].items()
               if k.startswith("module.")}
    generator = load_file(run / "model.safetensors")
    assert generator.keys() == average.keys()
    assert all(torch.equal(v, average[k]) for k, v in generator.items())
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png"]


def test_a_tanh_generator_needs_data_in_its_range(tmp_path: Path) -> None:
    text = TINY_DCGAN  # digits' pixels lie in [0, 1]; the generator's tanh makes [-1, 1]
    with pytest.raises(SpecError, match=r"ends in tanh .* range over \[0, 1\]") as error:
        train(text, tmp_path / "raw")
    assert "normalize: {mean: [0.5], std: [0.5]}" in str(error.value)
    fixed = text.replace("{dataset: digits}",
                         "{dataset: digits, normalize: {mean: [0.5], std: [0.5]}}")
    result = train(fixed, tmp_path / "fixed")
    grid = Image.open(tmp_path / "fixed" / "samples" / "epoch_001.png")
    assert grid.size == (2 * (8 * 10 + 2), 2 * (8 * 10 + 2))  # 8 × 8 images of 8 × 8, gaps
    assert result.info.generator["output_normalization"] == {  # type: ignore[attr-defined]
        "mean": [0.5], "std": [0.5]}
    record = result.fit.history[0]  # type: ignore[attr-defined]
    assert 0.1 <= record["digit_confidence"] <= 1 and record["digit_class_max"] > 0
    assert (tmp_path / "fixed" / "classifier" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- build, sample

TINY_DCGAN = """\
dlspec: 1
name: tiny_dcgan
networks:
  generator:
    inputs:
      z: {shape: [8]}
    network:
      - linear: 64
      - reshape: [1, 8, 8]
      - tanh
  discriminator:
    inputs:
      image: {shape: [1, 8, 8]}
    network:
      - flatten
      - linear: 1
task: gan
data: {dataset: digits}
train: {epochs: 1, batch_size: 64}
"""


def imported_torch(stderr: str) -> list[str]:
    names = [line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
             if line.startswith("import time:")]
    return [n for n in names if n == "torch" or n.startswith("torch.")]


def test_build_exports_the_generator_and_predict_samples_points_without_torch(
        tmp_path: Path) -> None:
    spec = tmp_path / "toy.yaml"
    spec.write_text(toy(distribution=", distribution: uniform"))
    run = tmp_path / "run"
    built = subprocess.run([sys.executable, "-m", "dlspec", "build", str(spec), "--out",
                            str(run), "--epochs", "1"], capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stderr
    import onnx

    meta = {p.key: p.value for p in onnx.load(run / "model.onnx").metadata_props}
    assert meta["dlspec_network"] == "generator"
    assert json.loads(meta["dlspec_generator"])["latent"] == {"z": "uniform"}
    out = tmp_path / "points.csv"
    sampled = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlspec", "predict",
                              str(run / "model.onnx"), "--sample", "5", "-o", str(out)],
                             capture_output=True, text=True, cwd=ROOT)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert imported_torch(sampled.stderr) == []
    assert "sampled 5 from model.onnx" in sampled.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "x0,x1" and len(rows) == 6
    # the same noise as the generator in PyTorch gives the same points
    from dlspec.runtime import Predictor
    from dlspec.runtime.sampling import draw_samples

    points = np.loadtxt(out, delimiter=",", skiprows=1)
    z = np.random.default_rng(0).uniform(-1.0, 1.0, (5, 2)).astype(np.float32)
    model = dlspec.compile_spec(dlspec.load(spec), "generator")
    from safetensors.torch import load_model

    load_model(model, str(run / "model.safetensors"))
    expected = model(torch.from_numpy(z)).detach().numpy()
    np.testing.assert_allclose(points, expected, atol=1e-4)
    again = draw_samples(Predictor(run / "model.onnx"), 5, seed=1)
    assert not np.allclose(again, points)


def test_predict_samples_images_as_png_files(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_DCGAN.replace("{dataset: digits}", "{dataset: digits, normalize: "
                                       "{mean: [0.5], std: [0.5]}}"))
    run = tmp_path / "run"
    dlspec.train_spec(dlspec.load(spec), run)
    (result,) = dlspec.export_spec(dlspec.load(spec), checkpoint=run)
    assert result.path == run / "model.onnx"
    folder = tmp_path / "pictures"
    sampled = subprocess.run([sys.executable, "-m", "dlspec", "predict", str(run), "--sample",
                              "3", "-o", str(folder)], capture_output=True, text=True, cwd=ROOT)
    assert sampled.returncode == 0, sampled.stderr
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["sample_0000.png", "sample_0001.png", "sample_0002.png"]
    pixels = np.asarray(Image.open(folder / files[0]))
    assert pixels.shape == (8, 8) and pixels.dtype == np.uint8
    both = subprocess.run([sys.executable, "-m", "dlspec", "predict", str(run), "x.npy",
                           "--sample", "3"], capture_output=True, text=True, cwd=ROOT)
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_digits_classifier_tells_digits_from_collapse(tmp_path: Path) -> None:
    from dlspec.data import load_data
    from dlspec.graph import InputDecl
    from dlspec.spec.sections import DataConfig, NormalizeStats
    from dlspec.train.digits_judge import DigitsJudge

    config = DataConfig(dataset="digits", normalize=NormalizeStats(mean=[0.5], std=[0.5]))
    data = load_data(config, None, {"image": InputDecl((1, 8, 8))}, seed=0, base_dir=tmp_path)
    judge = DigitsJudge.prepare(tmp_path / "classifier", (1, 8, 8), data, seed=0)
    assert judge.test_accuracy is not None and judge.test_accuracy > 0.9
    real = judge.judge(data.train.inputs["image"])
    assert real["digit_confidence"] > 0.9
    assert real["digit_class_min"] >= 0.05 and real["digit_class_max"] <= 0.2
    collapsed = judge.judge(data.train.inputs["image"][:1].repeat(100, 1, 1, 1))
    assert collapsed["digit_class_max"] == 1.0 and collapsed["digit_class_min"] == 0.0
    loaded = DigitsJudge.prepare(tmp_path / "classifier", (1, 8, 8), data, seed=0)
    assert loaded.judge(data.train.inputs["image"]) == real  # trained once, then loaded


# --------------------------------------------------------------------------- quality


@pytest.mark.slow
def test_wgan_gp_learns_the_eight_gaussians(tmp_path: Path) -> None:
    """specs/wgan_gp.yaml narrowed (128 units) and halved (40 epochs, ~8 s): it still finds
    every mode, where an untrained generator hits none."""
    text = (ROOT / "specs" / "wgan_gp.yaml").read_text()
    for full, short in (("width: 512", "width: 128"), ("epochs: 80", "epochs: 40")):
        assert full in text
        text = text.replace(full, short)
    spec = dlspec.loads(text, str(tmp_path / "wgan_gp.yaml"))
    untrained = dlspec.compile_spec(spec, "generator").eval()
    result = dlspec.train_spec(spec, tmp_path / "run")
    last = result.fit.history[-1]  # type: ignore[attr-defined]
    data = result.data  # type: ignore[attr-defined]
    modes = Modes.of(data.train.inputs["point"], data.train.target)
    assert modes is not None
    with torch.no_grad():
        before = modes.coverage(untrained(torch.randn(2000, 2)).numpy())
    assert before["modes_covered"] <= 1 and before["high_quality_fraction"] < 0.05
    assert last["modes_covered"] == 8
    assert last["high_quality_fraction"] > 0.4  # 0.56 measured; the full spec reaches 0.91


def test_supervised_settings_a_gan_ignores_are_errors(tmp_path: Path) -> None:
    text = toy(train=", grad_clip: {norm: 1.0}, early_stopping: {patience: 2}")
    with pytest.raises(SpecError) as error:
        train(text, tmp_path / "run")
    rendered = str(error.value)
    assert "train.grad_clip: task gan: gradient clipping" in rendered
    assert "train.early_stopping: task gan: early stopping" in rendered


def test_gans_refuse_data_parallel_workers(tmp_path: Path) -> None:
    spec = tmp_path / "toy.yaml"
    spec.write_text(toy())
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--nproc", "2",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 2
    assert "task gan trains in one process" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_dcgan_learns_digits(tmp_path: Path) -> None:
    """specs/dcgan.yaml at half its width for 5 epochs at 2.5 times its learning rate (both
    networks' 2e-4 made 5e-4): the digits classifier finds digits of many classes in its
    samples. An untrained generator's samples get a mean top probability of 0.16, all in one
    class. (At 2e-4 the half-width networks need 10 epochs, twice the time; at 5e-4 seeds 0, 1
    and 2 all pass from epoch 4 on.)"""
    text = (ROOT / "specs" / "dcgan.yaml").read_text()
    for full, short in (("out_channels: 64,", "out_channels: 32,"),
                        ("out_channels: 128", "out_channels: 64"),
                        ("out_channels: 256", "out_channels: 128"), ("epochs: 20", "epochs: 5"),
                        ("lr: 2.0e-4", "lr: 5.0e-4")):
        assert full in text
        text = text.replace(full, short)
    spec = dlspec.loads(text, str(tmp_path / "dcgan.yaml"))
    result = dlspec.train_spec(spec, tmp_path / "run")
    last = result.fit.history[-1]  # type: ignore[attr-defined]
    assert last["digit_confidence"] > 0.7  # 0.88 measured; the full spec reaches 0.88 too
    assert last["digit_class_max"] < 0.4  # 0.18 measured (the full spec: 0.16)
    grid = Image.open(tmp_path / "run" / "samples" / "epoch_005.png")
    assert grid.size == (2 * (8 * 34 + 2), 2 * (8 * 34 + 2))


# --------------------------------------------------------------------------- conditional

CONDITIONAL_TOY = """\
dlspec: 1
name: conditional_toy
networks:
  generator:
    inputs:
      z: {shape: [2]}
      mode: {shape: [], dtype: int64}
    network:
      - {name: embed, embedding: {num_embeddings: 8, embedding_dim: 8}, from: mode}
      - {name: joined, concat: 1, from: [z, embed]}
      - {name: hidden, linear: 64}
      - relu
      - {name: point, linear: 2}
  discriminator:
    inputs:
      mode: {shape: [], dtype: int64}
      point: {shape: [2]}
    network:
      - {name: embed, embedding: {num_embeddings: 8, embedding_dim: 8}, from: mode}
      - {name: joined, concat: 1, from: [point, embed]}
      - {name: hidden, linear: 64}
      - relu
      - {name: score, linear: 1}
task: gan
loss: least_squares
optimizer:
  generator: {type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}
  discriminator: {type: adam, lr: 1.0e-3, betas: [0.5, 0.9]}
data: {dataset: eight_gaussians, num_samples: 1600, split: {train: 1.0}}
train: {epochs: 20, batch_size: 100, seed: 0}
"""


def test_a_conditional_gan_makes_the_mode_it_is_asked_for(tmp_path: Path) -> None:
    """Both networks read the mode's label (the discriminator declares it first); after 20
    epochs the points land nearest the mode asked for, and the exported generator, run
    without torch, makes points of the mode `--label` names."""
    spec = tmp_path / "conditional.yaml"
    spec.write_text(CONDITIONAL_TOY)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dlspec", "build", str(spec), "--out",
                             str(run)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    last = json.loads((run / "metrics.json").read_text())["epochs"][-1]
    assert last["label_accuracy"] >= 0.9
    assert "mode [dynamic] int64" in result.stderr  # the exported generator reads the label
    sampled = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlspec", "predict",
                              str(run / "model.onnx"), "--sample", "200", "--label", "3",
                              "-o", str(tmp_path / "threes.npy")],
                             capture_output=True, text=True, cwd=ROOT)
    assert sampled.returncode == 0, sampled.stderr
    assert imported_torch(sampled.stderr) == []
    points = np.load(tmp_path / "threes.npy")
    angle = 2 * np.pi * 3 / 8  # eight_gaussians' mode k sits at angle 2πk/8 on the ring
    centres = 2 * np.stack([np.cos(angle), np.sin(angle)])
    modes = Modes.of(torch.from_numpy(np.concatenate([points, points])),
                     torch.zeros(400, dtype=torch.long))
    assert modes is not None and np.linalg.norm(modes.centres[0] - centres) < 0.5
    wrong = subprocess.run([sys.executable, "-m", "dlspec", "predict", str(run / "model.onnx"),
                            "--sample", "2", "--label", "8"], capture_output=True, text=True,
                           cwd=ROOT)
    assert wrong.returncode == 2 and "there is no class '8'" in wrong.stderr


def test_a_label_only_one_network_reads_is_refused() -> None:
    text = CONDITIONAL_TOY.replace(
        "      mode: {shape: [], dtype: int64}\n      point: {shape: [2]}",
        "      point: {shape: [2]}").replace(
        "      - {name: embed, embedding: {num_embeddings: 8, embedding_dim: 8}, from: mode}\n"
        "      - {name: joined, concat: 1, from: [point, embed]}\n", "")
    with pytest.raises(SpecError, match="generator reads a class label .mode. but "
                                        "discriminator does not"):
        dlspec.shapes(dlspec.loads(text))


def test_a_label_is_one_integer_per_sample() -> None:
    # a label of shape [1], flattened after its embedding: the shapes work out, but a
    # label is one integer per sample
    text = CONDITIONAL_TOY.replace(
        "mode: {shape: [], dtype: int64}\n    network:\n      - {name: embed, embedding: "
        "{num_embeddings: 8, embedding_dim: 8}, from: mode}\n      - {name: joined, concat: 1, "
        "from: [z, embed]}", "mode: {shape: [1], dtype: int64}\n    network:\n      - {name: "
        "embed, embedding: {num_embeddings: 8, embedding_dim: 8}, from: mode}\n      - {name: "
        "flat, flatten}\n      - {name: joined, concat: 1, from: [z, flat]}", 1)
    assert "flat, flatten" in text
    with pytest.raises(SpecError, match=r"declare it mode: \{shape: \[\], dtype: int64\}"):
        dlspec.shapes(dlspec.loads(text))


def test_an_embedding_too_small_for_the_classes_is_refused(tmp_path: Path) -> None:
    text = CONDITIONAL_TOY.replace("num_embeddings: 8", "num_embeddings: 5", 1)
    with pytest.raises(SpecError, match="embeds the class label in 5 rows, but the data has "
                                        "8 classes"):
        train(text, tmp_path / "run", epochs=1)


TINY_CGAN = """\
dlspec: 1
name: tiny_cgan
networks:
  generator:
    inputs:
      z: {shape: [8]}
      label: {shape: [], dtype: int64}
    network:
      - {name: embed, embedding: {num_embeddings: 10, embedding_dim: 4}, from: label}
      - {name: joined, concat: 1, from: [z, embed]}
      - linear: 64
      - reshape: [1, 8, 8]
      - tanh
  discriminator:
    inputs:
      image: {shape: [1, 8, 8]}
      label: {shape: [], dtype: int64}
    network:
      - {name: embed, embedding: {num_embeddings: 10, embedding_dim: 16}, from: label}
      - {name: flat, flatten, from: image}
      - {name: joined, concat: 1, from: [flat, embed]}
      - linear: 1
task: gan
data: {dataset: digits, normalize: {mean: [0.5], std: [0.5]}}
train: {epochs: 1, batch_size: 64}
"""


def test_a_conditional_gan_on_digits_draws_one_digit_a_row(tmp_path: Path) -> None:
    result = train(TINY_CGAN, tmp_path / "run")
    record = result.fit.history[0]  # type: ignore[attr-defined]
    assert 0 <= record["digit_label_accuracy"] <= 1
    grid = Image.open(tmp_path / "run" / "samples" / "epoch_001.png")
    assert grid.size == (2 * (8 * 10 + 2), 2 * (10 * 10 + 2))  # 10 rows: one per digit
    generator = result.info.generator  # type: ignore[attr-defined]
    assert generator["labels"] == {"label": 10} and generator["latent"] == {"z": "normal"}
    assert generator["class_names"] == [str(d) for d in range(10)]
