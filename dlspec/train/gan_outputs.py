"""What a GAN run shows of its generator: latent noise, sample pictures and mode coverage.

Every epoch the generator turns the same fixed noise into samples, so the pictures in
`samples/` show one set of samples changing. Images become a PNG grid (undoing the data's
normalisation); 2-D points a PNG scatter of generated (red) over real (grey) points. Pictures
are drawn with Pillow straight from arrays: one per epoch must cost next to nothing.

Mode coverage, for 2-D points whose targets name the mode each real sample came from
(eight_gaussians): a generated point is *high quality* when it lies within 3σ of the nearest
mode's centre, where the centres and σ are measured on the real points (σ pooled over the
modes and both axes); a mode is *covered* when at least a fifth of its fair share of the
generated points (0.2 · N / modes) lands on it with high quality. Srivastava et al. (VEEGAN,
2017) and Metz et al. (unrolled GANs, 2017) report the same two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlspec.graph import InputDecl
from dlspec.runfiles import CURVES

if TYPE_CHECKING:
    from PIL import Image

GRID = 8  # an 8 × 8 grid of images
POINTS = 2000  # generated points measured and drawn each epoch
_COVERED_SHARE = 0.2
_SCATTER_SIZE = 480


def draw_latent(decls: dict[str, InputDecl], distributions: Mapping[str, str], count: int,
                generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """`count` latent samples per generator input: N(0, 1), or U(-1, 1) where asked."""
    drawn = []
    for name, decl in decls.items():
        shape = (count, *decl.shape)
        if distributions.get(name) == "uniform":
            drawn.append(torch.rand(shape, generator=generator) * 2 - 1)
        else:
            drawn.append(torch.randn(shape, generator=generator))
    return drawn


@dataclass
class Modes:
    """The modes of 2-D real data: their centres and the pooled spread σ around them."""

    centres: np.ndarray  # (K, 2)
    sigma: float

    @classmethod
    def of(cls, points: torch.Tensor, modes: torch.Tensor) -> Modes | None:
        """Measured on real points (N, 2) and their mode indices (N,); None if not 2-D."""
        if points.dim() != 2 or points.shape[1] != 2 or modes.dim() != 1 or \
                modes.is_floating_point() or len(modes) == 0:
            return None
        x, y = points.double().numpy(), modes.numpy()
        labels = np.unique(y)
        centres = np.stack([x[y == k].mean(axis=0) for k in labels])  # (K, 2)
        spread = x - centres[np.searchsorted(labels, y)]
        return cls(centres, float(np.sqrt((spread ** 2).mean())))

    def coverage(self, generated: np.ndarray, labels: np.ndarray | None = None
                 ) -> dict[str, float]:
        """`modes_covered` and `high_quality_fraction` of generated points (N, 2); for a
        conditional GAN (`labels`: the mode asked for each point) also `label_accuracy`, the
        share of points nearest the mode asked for (modes numbered in label order)."""
        distance = np.linalg.norm(generated[:, None, :] - self.centres[None], axis=2)  # (N, K)
        nearest, closest = distance.argmin(axis=1), distance.min(axis=1)
        good = closest <= 3 * self.sigma
        counts = np.bincount(nearest[good], minlength=len(self.centres))
        fair = len(generated) / len(self.centres)
        numbers = {"modes_covered": float((counts >= _COVERED_SHARE * fair).sum()),
                   "high_quality_fraction": float(good.mean()) if len(good) else 0.0}
        if labels is not None:
            numbers["label_accuracy"] = float((nearest == labels).mean())
        return numbers


class SamplePictures:
    """Draws the generator's samples of each epoch into `samples/epoch_NNN.png`."""

    def __init__(self, folder: Path, sample_shape: tuple[int, ...],
                 normalization: dict[str, list[float]] | None, real: torch.Tensor,
                 rows: int | None = None):
        self.folder = folder
        self.rows = rows or GRID  # a conditional GAN's images: one row per class
        self.kind = ("image" if len(sample_shape) == 3 and sample_shape[0] in (1, 3)
                     else "points" if sample_shape == (2,) else "array")
        self.normalization = normalization
        self.real = real[:POINTS].numpy() if self.kind == "points" else None

    @property
    def count(self) -> int:
        """How many samples a picture shows."""
        return GRID * self.rows if self.kind == "image" else POINTS

    def labels(self, num_classes: int) -> torch.Tensor:
        """The class asked for each pictured sample: one class a row, or points in turn."""
        if self.kind == "image":
            return torch.arange(self.count) // GRID % num_classes
        return torch.arange(self.count) % num_classes

    def write(self, epoch: int, samples: torch.Tensor) -> Path:
        """The picture (or, for other shapes, the .npy array) of one epoch's samples."""
        self.folder.mkdir(parents=True, exist_ok=True)
        values = samples.detach().float().cpu().numpy()
        if self.kind == "array":
            path = self.folder / f"epoch_{epoch:03d}.npy"
            np.save(path, values)
            return path
        path = self.folder / f"epoch_{epoch:03d}.png"
        if self.kind == "image":
            image_grid(denormalize(values, self.normalization)).save(path)
        else:
            assert self.real is not None
            scatter(values, self.real).save(path)
        return path


def denormalize(images: np.ndarray, stats: dict[str, list[float]] | None) -> np.ndarray:
    """(N, C, H, W) values as the data was normalised → [0, 1] pixel values."""
    if stats is not None:
        mean = np.asarray(stats["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(stats["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        images = images * std + mean
    return np.clip(images, 0.0, 1.0)


def image_grid(images: np.ndarray, scale: int = 2) -> Image.Image:
    """A PIL image of (N, C, H, W) pixels in [0, 1], GRID per row, 2-pixel gaps."""
    from PIL import Image  # noqa: F811 - the module itself, imported when drawing

    count, channels, height, width = images.shape
    columns = min(GRID, count)
    rows = math.ceil(count / columns)
    gap = 2
    canvas = np.ones((rows * (height + gap) + gap, columns * (width + gap) + gap, channels),
                     dtype=np.float32)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    pixels = (canvas * 255).round().astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def scatter(generated: np.ndarray, real: np.ndarray) -> Image.Image:
    """A PIL scatter plot: real points grey, generated points red, on the real data's frame."""
    from PIL import Image, ImageDraw  # noqa: F811

    low, high = real.min(axis=0), real.max(axis=0)
    margin = 0.25 * (high - low).max() + 1e-6
    low, span = low - margin, (high - low).max() + 2 * margin
    picture = Image.new("RGB", (_SCATTER_SIZE, _SCATTER_SIZE), "white")
    draw = ImageDraw.Draw(picture)

    def dots(points: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
        pixels = (points - low) / span * (_SCATTER_SIZE - 1)
        for x, y in pixels:
            if 0 <= x < _SCATTER_SIZE and 0 <= y < _SCATTER_SIZE:
                y = _SCATTER_SIZE - 1 - y  # y grows upwards in the plot
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)

    dots(real, (170, 170, 170), 2)
    dots(generated, (214, 39, 40), 1)
    return picture


def write_gan_curves(run_dir: Path, history: list[dict[str, float]], title: str) -> Path:
    """curves.png of a GAN: both losses, the Wasserstein estimate (WGAN), mode coverage
    (2-D points) and the learning rates, one panel each (matplotlib, no display); of a
    CycleGAN: its losses, round-trip errors, translated images' domains and learning rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "cycle_loss" in history[0]:  # task cyclegan
        panels = [("losses", ["g_loss", "g_adversarial", "cycle_loss", "identity_loss",
                              "d_loss_a", "d_loss_b"]),
                  ("round-trip error (pixels)", ["cycle_error_a", "cycle_error_b"]),
                  ("taken for the target domain", ["translated_as_b", "translated_as_a"])]
    else:
        panels = [("losses", ["d_loss", "g_loss"])]
    if "wasserstein_estimate" in history[0]:
        panels.append(("Wasserstein estimate", ["wasserstein_estimate"]))
    if "modes_covered" in history[0]:
        panels.append(("modes covered", ["modes_covered"]))
        panels.append(("high-quality fraction", ["high_quality_fraction", "label_accuracy"]))
    if "digit_confidence" in history[0]:
        panels.append(("generated digits (classifier)",
                       ["digit_confidence", "digit_class_min", "digit_class_max",
                        "digit_label_accuracy"]))
    panels.append(("learning rate", [k for k in history[0] if k.startswith("lr/")]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8),
                             constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    for axis, (name, keys) in zip(axes, panels, strict=True):
        for key in keys:
            if any(key in r for r in history):
                axis.plot(epochs, [r.get(key, math.nan) for r in history],
                          label=key.removeprefix("lr/").replace("_", " "))
        axis.set(title=name, xlabel="epoch")
        if len(keys) > 1:
            axis.legend(frameon=False, fontsize="small")
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    path = run_dir / CURVES
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
