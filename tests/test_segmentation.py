"""Segmentation (`task: segmentation`): the built-in shapes_masks data, the per-pixel metrics'
arithmetic, a small U-Net learning the masks, the checks that keep masks and outputs apart,
and `dlspec predict` writing masks without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dlspec
from conftest import ROOT
from dlspec.data.builtin import Options, shapes_masks
from dlspec.errors import SpecError
from dlspec.train.metrics import compute_metrics

# a two-level U-Net at 3×16×16: a logit per pixel, shape (1) or background (0)
TINY = """\
dlspec: 1
name: tiny_unet
inputs:
  image: {shape: [3, 16, 16]}
network:
  - {name: enc1, conv2d: {out_channels: 8, kernel_size: 3, padding: 1}}
  - relu
  - {name: pool, maxpool2d: 2}
  - {name: enc2, conv2d: {out_channels: 16, kernel_size: 3, padding: 1}}
  - relu
  - {name: up, conv_transpose2d: {out_channels: 8, kernel_size: 2, stride: 2}}
  - {name: skip, concat: 1, from: [up, enc1]}
  - {name: dec, conv2d: {out_channels: 8, kernel_size: 3, padding: 1}}
  - relu
  - {name: head, conv2d: {out_channels: OUT, kernel_size: 1}}
task: segmentation
loss: LOSS
optimizer: {type: adam, lr: 1.0e-2}
data: {dataset: shapes_masks, num_samples: 400, split: {train: 0.8, val: 0.1, test: 0.1}}
train: {epochs: EPOCHS, batch_size: 32, seed: 0}
"""


def tiny(out: int = 1, loss: str = "binary_cross_entropy", epochs: int = 8) -> str:
    """The tiny U-Net spec: `out` logits per pixel, trained with `loss`."""
    return TINY.replace("OUT", str(out)).replace("LOSS", loss).replace("EPOCHS", str(epochs))


def train(text: str, out: Path, **options: object) -> object:
    return dlspec.train_spec(dlspec.loads(text, str(out.parent / "spec.yaml")), out, **options)


# --------------------------------------------------------------------------- data, metrics

def test_shapes_masks_are_images_of_the_input_size_with_their_masks() -> None:
    raw = shapes_masks(Options(num_samples=20, input_shape=(1, 24, 32), seed=3))
    assert raw.x.shape == (20, 1, 24, 32) and raw.y is not None and raw.y.shape == (20, 24, 32)
    assert set(np.unique(raw.y)) == {0, 1} and raw.num_classes == 2
    assert raw.x.min() >= 0.0 and raw.x.max() <= 1.0
    inside, outside = raw.x[:, 0][raw.y == 1].mean(), raw.x[:, 0][raw.y == 0].mean()
    assert inside > outside + 0.3  # shapes are brighter than the background
    again = shapes_masks(Options(num_samples=20, input_shape=(1, 24, 32), seed=3))
    assert np.array_equal(raw.x, again.x) and np.array_equal(raw.y, again.y)


def test_pixel_accuracy_iou_and_dice_of_a_binary_mask() -> None:
    target = torch.tensor([[[1, 1], [0, 0]]])  # (1, 2, 2)
    logits = torch.tensor([[[[3.0, -1.0], [2.0, -4.0]]]])  # (1, 1, 2, 2): predicts 1 0 / 1 0
    numbers = compute_metrics(["pixel_accuracy", "iou", "dice"], logits, target)
    # foreground: 1 pixel in both, 2 predicted, 2 in the mask → IoU 1/3, Dice 2/4
    assert numbers == pytest.approx({"pixel_accuracy": 0.5, "iou": 1 / 3, "dice": 0.5})


def test_iou_over_several_classes_averages_the_classes_present() -> None:
    target = torch.tensor([[[0, 1], [2, 2]]])
    logits = torch.zeros(1, 4, 2, 2)  # 4 output classes; class 3 appears nowhere
    for (row, column), predicted in {(0, 0): 0, (0, 1): 2, (1, 0): 2, (1, 1): 2}.items():
        logits[0, predicted, row, column] = 1.0
    numbers = compute_metrics(["pixel_accuracy", "iou"], logits, target)
    # class 0: 1/1, class 1: 0/1, class 2: 2/3 → mean over the three present
    assert numbers["pixel_accuracy"] == 0.75
    assert numbers["iou"] == pytest.approx((1 + 0 + 2 / 3) / 3)


@pytest.mark.parametrize(("section", "agreement"), [
    ({"horizontal_flip": 0.5, "vertical_flip": 0.5}, 1.0),
    ({"random_crop": {"padding": 3}}, 1.0),
    ({"rotation": 30, "color_jitter": {"brightness": 0.2}}, 0.97),
])
def test_masks_move_with_their_images(section: dict[str, object], agreement: float) -> None:
    from dlspec.data.augment import augment_with_masks
    from dlspec.spec.sections import AugmentConfig

    raw = shapes_masks(Options(num_samples=16, input_shape=(3, 24, 24), seed=1))
    assert raw.y is not None
    masks = torch.from_numpy(raw.y)
    # each image is its mask in every channel: a mask that moved with its image still marks
    # the image's bright pixels
    images = masks[:, None].float().expand(-1, 3, -1, -1).clone()
    config = AugmentConfig.model_validate({"images": section})
    (moved,), moved_masks = augment_with_masks([images.clone()], masks.clone(), config,
                                               torch.Generator().manual_seed(0))
    assert moved_masks is not None and moved_masks.dtype == masks.dtype
    assert not torch.equal(moved_masks, masks)  # something moved
    bright = moved.mean(dim=1) > 0.5
    assert (bright == (moved_masks == 1)).float().mean() >= agreement


# --------------------------------------------------------------------------- training

def test_a_small_unet_learns_the_masks(tmp_path: Path) -> None:
    result = train(tiny(epochs=8), tmp_path / "run")
    test = result.test  # type: ignore[attr-defined]
    assert test["iou"] >= 0.8 and test["pixel_accuracy"] >= 0.95, test
    first = result.fit.history[0]  # type: ignore[attr-defined]
    assert first["val_iou"] < test["iou"]


def test_a_unet_trains_with_augmented_images_and_masks(tmp_path: Path) -> None:
    text = tiny(epochs=8) + ("augment: {images: {horizontal_flip: 0.5, vertical_flip: 0.5, "
                             "random_crop: {padding: 2}}}\n")
    result = train(text, tmp_path / "run")
    assert result.test["iou"] >= 0.75  # type: ignore[attr-defined]


def test_two_classes_as_two_channels_train_with_cross_entropy(tmp_path: Path) -> None:
    result = train(tiny(out=2, loss="cross_entropy", epochs=2), tmp_path / "run")
    test = result.test  # type: ignore[attr-defined]
    assert set(test) == {"loss", "pixel_accuracy", "iou"}
    # mean IoU over both classes: all-background would score about 0.4 (background ≈ 0.8,
    # shapes 0); measured 0.92
    assert test["iou"] >= 0.8


def test_build_exports_and_predict_writes_masks_without_torch(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny(epochs=6))
    run = tmp_path / "run"
    built = subprocess.run([sys.executable, "-m", "dlspec", "build", str(spec), "--out",
                            str(run)], capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stderr
    assert "verified in ONNX Runtime" in built.stderr
    raw = shapes_masks(Options(num_samples=12, input_shape=(3, 16, 16), seed=99))
    np.save(tmp_path / "images.npy", raw.x)
    masks_file = tmp_path / "masks.npy"
    predicted = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlspec", "predict",
                                str(run / "model.onnx"), str(tmp_path / "images.npy"), "-o",
                                str(masks_file)], capture_output=True, text=True, cwd=ROOT)
    assert predicted.returncode == 0, predicted.stderr
    assert not [line for line in predicted.stderr.splitlines()
                if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip()
                in ("torch", "torch.nn")]
    assert "segmented 12 samples (16×16 masks, 2 classes)" in predicted.stderr
    masks = np.load(masks_file)
    assert masks.shape == (12, 16, 16)
    assert (masks == raw.y).mean() >= 0.9  # new images, masks as the model learnt them
    folder = tmp_path / "pngs"
    as_pictures = subprocess.run([sys.executable, "-m", "dlspec", "predict",
                                  str(run / "model.onnx"), str(tmp_path / "images.npy"), "-o",
                                  str(folder)], capture_output=True, text=True, cwd=ROOT)
    assert as_pictures.returncode == 0, as_pictures.stderr
    picture = np.asarray(Image.open(folder / "mask_0000.png"))
    assert picture.shape == (16, 16) and set(np.unique(picture)) <= {0, 255}
    assert np.array_equal(picture == 255, masks[0] == 1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["iou"] > 0.5


# --------------------------------------------------------------------------- bad input

def test_output_channels_that_do_not_fit_the_classes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"masks are 16×16 with 2 classes, so the network's "
                                        r"output should be 1×16×16 or 2×16×16.*3×16×16"):
        train(tiny(out=3, loss="cross_entropy"), tmp_path / "run")


def test_a_value_loss_is_refused_for_masks(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="mse compares values, but the task is segmentation"):
        train(tiny(loss="mse"), tmp_path / "run")


def test_per_sample_metrics_are_refused(tmp_path: Path) -> None:
    text = tiny().replace("seed: 0}", "seed: 0, metrics: [iou, accuracy]}")
    with pytest.raises(SpecError, match="accuracy is not a metric of task segmentation"):
        train(text, tmp_path / "metrics")


def test_targets_that_are_not_masks_are_refused(tmp_path: Path) -> None:
    text = tiny().replace("dataset: shapes_masks, num_samples: 400,",
                          "dataset: digits, resize: [16, 16],").replace(
        "image: {shape: [3, 16, 16]}", "image: {shape: [1, 16, 16]}")
    with pytest.raises(SpecError, match="needs a mask per sample"):
        train(text, tmp_path / "run")
