"""CycleGAN training (`task: cyclegan`): the image pool, the generators' loss against the
paper's formula, the run folder through the real CLI (build: train, export, diagram),
determinism and resume, the checks of its four networks, and what it learns on digits_pair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import dlspec
from conftest import ROOT
from dlspec.errors import SpecError, WorkError
from dlspec.spec.sections import CycleGanLoss, LeastSquaresLoss, TrainConfig
from dlspec.train.cyclegan import ImagePool, _CycleGan, _generator_step
from dlspec.train.gan_objectives import GanObjective

_NETWORKS = """\
  generator_ab:
    inputs: {{image: {{shape: [1, {size}, {size}]}}}}
    network: {generator}
  generator_ba:
    inputs: {{image: {{shape: [1, {size}, {size}]}}}}
    network: {generator}
  discriminator_a:
    inputs: {{image: {{shape: [1, {size}, {size}]}}}}
    network: {discriminator}
  discriminator_b:
    inputs: {{image: {{shape: [1, {size}, {size}]}}}}
    network: {discriminator}
"""
GENERATOR = ("[{name: stem, conv2d: {out_channels: 8, kernel_size: 3, padding: 1, "
             "padding_mode: reflect}}, instancenorm2d, relu, {name: to_image, conv2d: "
             "{out_channels: 1, kernel_size: 3, padding: 1}}, tanh]")
DISCRIMINATOR = ("[{name: conv1, conv2d: {out_channels: 8, kernel_size: 4, stride: 2, "
                 "padding: 1}}, {leaky_relu: 0.2}, {name: patches, conv2d: {out_channels: 1, "
                 "kernel_size: 3, padding: 1}}]")
# digits (8 × 8) against their colour-inverted versions; 1437 training images of each
TINY = """\
dlspec: 1
name: tiny_cyclegan
networks:
{networks}task: cyclegan
loss: {{type: cyclegan, adversarial: least_squares, cycle_weight: 10.0, identity_weight: 0.0,
       pool_size: 20}}
optimizer: {{type: adam, lr: 2.0e-3, betas: [0.5, 0.999]}}
data: {{dataset: digits_pair, normalize: {{mean: [0.5], std: [0.5]}}}}
train: {{epochs: {epochs}, batch_size: 64, seed: 0}}
"""


def tiny(epochs: int = 2, size: int = 8, generator: str = GENERATOR,
         discriminator: str = DISCRIMINATOR) -> str:
    """The tiny CycleGAN spec's text."""
    networks = _NETWORKS.format(size=size, generator=generator, discriminator=discriminator)
    return TINY.format(networks=networks, epochs=epochs)


def train(text: str, out: Path, **options: object) -> object:
    spec = dlspec.loads(text, str(out.parent / "spec.yaml"))
    return dlspec.train_spec(spec, out, **options)


# --------------------------------------------------------------------------- the pool

def test_the_pool_shows_new_images_until_it_is_full_then_mixes_in_old_ones() -> None:
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).reshape(4, 1)
    assert torch.equal(pool.query(first), first)  # filling up: the new images themselves
    later = torch.arange(100.0, 164.0).reshape(64, 1)
    shown = pool.query(later).flatten().tolist()
    swapped = [i for i, value in enumerate(shown) if value != later[i].item()]
    assert 16 <= len(swapped) <= 48  # about half the batch comes from the pool
    for i in swapped:  # an image given to the pool earlier: the first ones, or this batch's
        assert shown[i] in range(4) or 100 <= shown[i] < 100 + i
    assert len(pool.images) == 4


def test_a_pool_of_size_zero_passes_images_through() -> None:
    images = torch.randn(5, 1, 2, 2, requires_grad=True)
    shown = ImagePool(0).query(images)
    assert torch.equal(shown, images) and not shown.requires_grad


def test_the_pool_survives_a_checkpoint() -> None:
    pool = ImagePool(3)
    pool.query(torch.randn(3, 1, 2, 2))
    again = ImagePool(3)
    again.load_state_dict(pool.state_dict(), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(pool.images, again.images, strict=True))


# --------------------------------------------------------------------------- the loss

def test_the_generators_minimise_the_papers_objective() -> None:
    """adversarial (least squares, as in Zhu et al.: (D(G(x)) - 1)²) + λ·cycle + λ·0.5·identity,
    recomputed by hand from the same networks."""
    torch.manual_seed(0)
    spec = dlspec.loads(tiny())
    models = {name: dlspec.compile_spec(spec, name) for name in
              ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")}
    section = CycleGanLoss(adversarial=LeastSquaresLoss(), cycle_weight=10.0,
                           identity_weight=0.5)
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.0) for name, m in models.items()}

    class NoSchedule:
        def step_batch(self) -> None: ...

    gan = _CycleGan(models, optimizers, dict.fromkeys(models, NoSchedule()),  # type: ignore[arg-type]
                    section, GanObjective(section.adversarial), TrainConfig(),
                    torch.device("cpu"), {})
    a, b = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    _, _, values = _generator_step(gan, a, b, 1, 1)
    ab, ba, da, db = (models[n] for n in models)
    with torch.no_grad():
        adversarial = ((db(ab(a)) - 1) ** 2).mean() + ((da(ba(b)) - 1) ** 2).mean()
        cycle = 10 * (F.l1_loss(ba(ab(a)), a) + F.l1_loss(ab(ba(b)), b))
        identity = 10 * 0.5 * (F.l1_loss(ab(b), b) + F.l1_loss(ba(a), a))
    assert values["g_adversarial"] == pytest.approx(adversarial.item(), rel=1e-5)
    assert values["cycle_loss"] == pytest.approx(cycle.item(), rel=1e-5)
    assert values["identity_loss"] == pytest.approx(identity.item(), rel=1e-5)
    assert values["g_loss"] == pytest.approx((adversarial + cycle + identity).item(), rel=1e-5)
    assert all(p.requires_grad for m in (da, db) for p in m.parameters())  # given back


# --------------------------------------------------------------------------- runs

def test_build_trains_exports_both_generators_and_draws(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny(epochs=2))
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dlspec", "build", str(spec), "--out",
                             str(run)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "cycle_error_a" in result.stderr and "Traceback" not in result.stderr
    for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        assert (run / f"{name}.safetensors").is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    assert {"cycle_error_a", "cycle_error_b", "translated_as_a",
            "translated_as_b"} <= set(metrics["test"])
    picture = Image.open(run / "samples" / "a_to_b_002.png")
    assert picture.size == (2 * (8 * 10 + 2), 2 * (3 * 10 + 2))  # real, translated, returned
    assert (run / "samples" / "b_to_a_001.png").is_file() and (run / "curves.png").is_file()
    for name in ("generator_ab", "generator_ba"):  # exported, verified, and runnable
        assert f"model.{name}.onnx" in result.stderr
        assert (run / f"model.{name}.onnx").is_file()
    assert (run / "architecture.svg").is_file()
    report = (run / "report.md").read_text()
    assert "translated_as_b" in report and "model.generator_ab.onnx" in report
    assert json.loads((run / "domain_classifier" / "metrics.json").read_text())[
        "test_accuracy"] >= 0.95

    # a run folder exports both generators from their own weights
    again = subprocess.run([sys.executable, "-m", "dlspec", "export", str(spec),
                            "--checkpoint", str(run), "-o", str(tmp_path / "g.onnx")],
                           capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "g.generator_ba.onnx").is_file()
    from dlspec.runtime import Predictor

    pixels = torch.rand(3, 1, 8, 8).numpy()  # raw [0, 1] pixels: the file normalises them
    (ours,) = Predictor(tmp_path / "g.generator_ab.onnx").predict(pixels).values()
    model = dlspec.compile_spec(dlspec.load(spec), "generator_ab")
    from safetensors.torch import load_model

    load_model(model, str(run / "generator_ab.safetensors"))
    with torch.no_grad():
        theirs = model.eval()((torch.from_numpy(pixels) - 0.5) / 0.5).numpy()
    output = ours
    assert abs(output - theirs).max() < 1e-4

    # predict translates images: A's statistics in, B's undone on the way out, no torch
    np.save(tmp_path / "digits.npy", pixels)
    translated = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlspec", "predict",
                                 str(run / "model.generator_ab.onnx"),
                                 str(tmp_path / "digits.npy"), "-o", str(tmp_path / "b.npy")],
                                capture_output=True, text=True, cwd=ROOT)
    assert translated.returncode == 0, translated.stderr
    assert "translated 3 images" in translated.stderr
    assert not [line for line in translated.stderr.splitlines() if line.startswith(
        "import time:") and line.rsplit("|", 1)[-1].strip() in ("torch", "torch.nn")]
    assert abs(np.load(tmp_path / "b.npy") - np.clip(theirs * 0.5 + 0.5, 0, 1)).max() < 1e-4
    folder = subprocess.run([sys.executable, "-m", "dlspec", "predict",
                             str(run / "model.generator_ba.onnx"), str(tmp_path / "digits.npy"),
                             "-o", str(tmp_path / "as_a")], capture_output=True, text=True,
                            cwd=ROOT)
    assert folder.returncode == 0, folder.stderr
    assert len(list((tmp_path / "as_a").glob("*.png"))) == 3


def test_same_seed_same_run_and_resume_continues_exactly(tmp_path: Path) -> None:
    text = tiny()
    train(text, tmp_path / "a", epochs=2)
    train(text, tmp_path / "b", epochs=2)
    train(text, tmp_path / "c", epochs=1)
    train(text, tmp_path / "c", epochs=2, resume=True)
    for network in ("generator_ab", "discriminator_b"):
        a, b, c = (load_file(tmp_path / x / f"{network}.safetensors") for x in "abc")
        for name in a:
            assert torch.equal(a[name], b[name]) and torch.equal(a[name], c[name]), name
    history = [json.loads((tmp_path / x / "metrics.json").read_text())["epochs"] for x in "ac"]
    assert [e["g_loss"] for e in history[0]] == [e["g_loss"] for e in history[1]]


def test_cyclegan_learns_to_invert_digits(tmp_path: Path) -> None:
    result = train(tiny(epochs=6), tmp_path / "run")
    first, last = result.fit.history[0], result.fit.history[-1]  # type: ignore[attr-defined]
    assert last["cycle_error_a"] < first["cycle_error_a"]
    assert last["cycle_error_a"] < 0.1 and last["cycle_error_b"] < 0.1
    assert last["translated_as_b"] >= 0.9 and last["translated_as_a"] >= 0.9


def test_a_diverging_cyclegan_stops_naming_epoch_and_batch(tmp_path: Path) -> None:
    text = tiny().replace("optimizer: {type: adam, lr: 2.0e-3, betas: [0.5, 0.999]}",
                          "optimizer: {type: sgd, lr: 1.0e+30}")
    with pytest.raises(WorkError, match="loss became .* at epoch 1, batch .*no epoch had "
                                        "finished, so no weights or outputs were written"):
        train(text, tmp_path / "run")
    assert not (tmp_path / "run" / "report.md").exists()
    assert not (tmp_path / "run" / "generator_ab.safetensors").exists()


def test_a_nan_stop_writes_the_run_folder_of_the_last_complete_epoch(tmp_path: Path) -> None:
    # epoch 1 learns at lr 1e-3; then the learning rate grows 1e12-fold and the losses explode
    text = tiny(epochs=3).replace("optimizer: {type: adam, lr: 2.0e-3, betas: [0.5, 0.999]}",
                                  "optimizer: {type: sgd, lr: 1.0e-3}\n"
                                  "schedule: {type: exponential, gamma: 1.0e+12}")
    run = tmp_path / "run"
    with pytest.raises(WorkError, match="loss became .* at epoch 2, batch") as error:
        train(text, run)
    assert error.value.exit_code == 1 and error.value.problems[0].location is None
    assert f"{run} holds the weights of epoch 1, the last complete one; lower optimizer.lr " \
        "and train again with --overwrite" in str(error.value)
    for name in ("metrics.csv", "curves.png", "data.json", "spec.resolved.yaml"):
        assert (run / name).is_file(), name
    numbers = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in numbers["epochs"]] == [1] and numbers["test"]
    report = (run / "report.md").read_text()
    assert "The run stopped: the" in report and "at epoch 2, batch" in report
    assert "those of epoch 1, the last complete one" in report
    checkpoint = load_file(run / "checkpoint.safetensors")  # epoch 1's, not the diverged ones
    for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        weights = load_file(run / f"{name}.safetensors")
        assert all(torch.equal(v, checkpoint[f"{name}.{k}"]) for k, v in weights.items())


# --------------------------------------------------------------------------- bad input

def test_a_missing_network_is_named_with_its_role(tmp_path: Path) -> None:
    text = tiny().replace("generator_ba:", "generator_back:")
    with pytest.raises(SpecError, match=r"missing generator_ba \(it translates domain B "
                                        r"into domain A\).*rename generator_back"):
        dlspec.shapes(dlspec.loads(text))


def test_a_generator_whose_images_the_discriminator_cannot_read(tmp_path: Path) -> None:
    text = tiny().replace("  discriminator_b:\n    inputs: {image: {shape: [1, 8, 8]}}",
                          "  discriminator_b:\n    inputs: {image: {shape: [1, 16, 16]}}")
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(spec)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "generator_ab makes domain-B images of 1×8×8, but discriminator_b reads " \
           "1×16×16" in result.stderr
    assert result.stderr.startswith(f"{spec}:"), result.stderr


def test_a_discriminator_ending_in_a_sigmoid_is_refused() -> None:
    text = tiny(discriminator=DISCRIMINATOR[:-1] + ", sigmoid]")
    with pytest.raises(SpecError, match="discriminator_a.*ends in a sigmoid.*least_squares"):
        dlspec.shapes(dlspec.loads(text))


def test_data_with_one_domain_is_refused(tmp_path: Path) -> None:
    text = tiny().replace("dataset: digits_pair", "dataset: digits")
    with pytest.raises(SpecError, match="reads domain A from the inputs and domain B"):
        train(text, tmp_path / "run")


def test_settings_cyclegan_does_not_honour_are_errors(tmp_path: Path) -> None:
    text = tiny().replace("seed: 0}", "seed: 0, n_critic: 5}")
    with pytest.raises(SpecError, match="task cyclegan: CycleGAN steps"):
        train(text, tmp_path / "run")
    from dlspec.train.gan_checks import check_settings

    check_settings(dlspec.loads(tiny().replace("seed: 0}", "seed: 0, n_critic: 1}")))  # default


def test_an_identity_loss_between_domains_of_different_shapes_is_refused() -> None:
    """Grey domain A, colour domain B: G_ab(b) cannot be computed."""
    to_colour = "[{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}, tanh]"
    text = tiny().replace(
        "  generator_ab:\n    inputs: {image: {shape: [1, 8, 8]}}\n    network: " + GENERATOR,
        "  generator_ab:\n    inputs: {image: {shape: [1, 8, 8]}}\n    network: "
        + to_colour).replace(
        "  generator_ba:\n    inputs: {image: {shape: [1, 8, 8]}}",
        "  generator_ba:\n    inputs: {image: {shape: [3, 8, 8]}}").replace(
        "  discriminator_b:\n    inputs: {image: {shape: [1, 8, 8]}}",
        "  discriminator_b:\n    inputs: {image: {shape: [3, 8, 8]}}")
    with_identity = text.replace("identity_weight: 0.0", "identity_weight: 0.5")
    with pytest.raises(SpecError, match=r"identity loss feeds domain-B images \(3×8×8\) to "
                                        r"generator_ab, which reads domain A \(1×8×8\)"):
        dlspec.shapes(dlspec.loads(with_identity))
    assert set(dlspec.shapes(dlspec.loads(text))) == {
        "generator_ab", "generator_ba", "discriminator_a", "discriminator_b"}


def _write_domains(root: Path, counts: dict[str, int]) -> None:
    """Sub-folders of 12×12 PNGs: a bright disc on black (trainA), a dark square on white
    (trainB), at random places."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:12, 0:12]
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            r, c = rng.integers(3, 9, 2)
            if name == "trainA":
                pixels = ((rows - r) ** 2 + (columns - c) ** 2 <= 6) * 255
            else:
                pixels = 255 - (np.maximum(abs(rows - r), abs(columns - c)) <= 2) * 255
            Image.fromarray(pixels.astype(np.uint8), "L").save(root / name / f"{i:03d}.png")


def test_an_image_folder_of_two_sub_folders_is_two_domains(tmp_path: Path) -> None:
    _write_domains(tmp_path / "pictures", {"trainA": 40, "trainB": 50})
    text = tiny(epochs=1).replace(
        "data: {dataset: digits_pair, normalize: {mean: [0.5], std: [0.5]}}",
        "data: {image_folder: pictures, grayscale: true, resize: [8, 8], "
        "normalize: {mean: [0.5], std: [0.5]}, split: {train: 0.8, val: 0.1, test: 0.1}}")
    spec = tmp_path / "folders.yaml"
    spec.write_text(text)
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dlspec", "train", str(spec), "--out",
                             str(run)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = (run / "report.md").read_text()
    assert "domain A: trainA, domain B: trainB, 40 images each; 10 images of the larger " \
           "domain left out" in report
    assert json.loads((run / "metrics.json").read_text())["test"]["translated_as_b"] >= 0

    (tmp_path / "pictures" / "trainC").mkdir()
    Image.new("L", (12, 12)).save(tmp_path / "pictures" / "trainC" / "0.png")
    with pytest.raises(SpecError, match="reads two domains: an image folder with two "
                                        "sub-folders, but .* has 3"):
        dlspec.train_spec(dlspec.load(spec), tmp_path / "again")
