"""Random changes to training batches, applied to whole batches at once (no per-sample Python).

Images are (B, C, H, W); sequences are (B, T, F). Every random draw comes from the
generator passed in, so a seeded run is reproducible and resumable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import AugmentConfig, ImageAugment, SequenceAugment


def check_augment(augment: AugmentConfig, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse augmentation that no input can take (images need C×H×W, sequences T×F)."""
    ranks = {len(shape) for shape in input_shapes.values()}
    for key, rank, layout in (("images", 3, "channels × height × width"),
                              ("sequences", 2, "steps × features")):
        if getattr(augment, key) is not None and rank not in ranks:
            listed = ", ".join(f"{k} {'×'.join(map(str, s))}" for k, s in input_shapes.items())
            raise SpecError(Problem(("augment", key), f"augment.{key} needs an input of "
                                    f"{layout}, but the inputs are {listed}"))
    crop = augment.images.random_crop if augment.images is not None else None
    if crop is not None and crop.size is not None:
        for name, shape in input_shapes.items():
            room = [side + 2 * crop.padding for side in shape[1:]] if len(shape) == 3 else []
            if room and (crop.size[0] > room[0] or crop.size[1] > room[1]):
                raise SpecError(Problem(
                    ("augment", "images", "random_crop", "size"), f"a {crop.size[0]}×"
                    f"{crop.size[1]} crop does not fit input {name} ({'×'.join(map(str, shape))}"
                    f" padded by {crop.padding})", f"crop at most {room[0]}×{room[1]}"))


Stats = dict[str, list[float]]  # {"mean": [...], "std": [...]} per channel


def augment_batch(inputs: list[torch.Tensor], augment: AugmentConfig,
                  generator: torch.Generator,
                  normalization: list[Stats | None] | None = None) -> list[torch.Tensor]:
    """The batch's float inputs, randomly changed as the section says.

    `normalization` gives, per input, the statistics the data was normalised with: images
    are then changed in their original [0, 1] values (so that brightness brightens and
    padding is black) and normalised again.
    """
    return augment_with_masks(inputs, None, augment, generator, normalization)[0]


def augment_with_masks(inputs: list[torch.Tensor], masks: torch.Tensor | None,
                       augment: AugmentConfig, generator: torch.Generator,
                       normalization: list[Stats | None] | None = None,
                       ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """`augment_batch`, and for segmentation the batch's masks (B, H, W) of class indices:
    crops, flips and rotations move each mask with its image (a rotated mask is sampled
    nearest, never blended; what comes into view is class 0), colour changes leave it be."""
    out = []
    images = augment.images
    for i, x in enumerate(inputs):
        if x.is_floating_point() and x.dim() == 4 and images is not None:
            # changed in their original [0, 1] values, then normalised again
            stats = normalization[i] if normalization is not None else None
            pixels, masks = _images(_scaled(x, stats, back=True), images, generator, masks)
            x = _scaled(pixels, stats, back=False)
        elif x.is_floating_point() and x.dim() == 3 and augment.sequences is not None:
            x = _sequences(x, augment.sequences, generator)
        out.append(x)
    return out, masks


def _scaled(x: torch.Tensor, stats: Stats | None, back: bool) -> torch.Tensor:
    """Normalised images back to their original values (`back`), or original ones normalised."""
    if stats is None:
        return x
    mean = torch.tensor(stats["mean"], dtype=x.dtype, device=x.device)[None, :, None, None]
    std = torch.tensor(stats["std"], dtype=x.dtype, device=x.device)[None, :, None, None]
    return x * std + mean if back else (x - mean) / std


def _uniform(count: int, low: float, high: float, generator: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(count, generator=generator) * (high - low) + low).to(like.device)


def _chosen(count: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(count, generator=generator) < probability


def _images(x: torch.Tensor, spec: ImageAugment, generator: torch.Generator,
            masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if spec.random_crop is not None:
        x, masks = _random_crop(x, spec.random_crop.size, spec.random_crop.padding, generator,
                                masks)
    for probability, axis in ((spec.horizontal_flip, -1), (spec.vertical_flip, -2)):
        if probability > 0:
            flip = _chosen(len(x), probability, generator).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(axis), x)
            if masks is not None:
                masks = torch.where(flip[:, None, None], masks.flip(axis), masks)
    if spec.rotation is not None:
        x, masks = _rotate(x, spec.rotation, generator, masks)
    if spec.color_jitter is not None:
        x = _jitter(x, spec.color_jitter, generator)
    return x, masks


def _random_crop(x: torch.Tensor, size: list[int] | None, padding: int,
                 generator: torch.Generator, masks: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pad with zeros, then cut one random window per sample (by gathering indices); the
    same window of each mask."""
    batch, _, height, width = x.shape
    out_h, out_w = size or (height, width)
    top = torch.randint(0, height + 2 * padding - out_h + 1, (batch,), generator=generator)
    left = torch.randint(0, width + 2 * padding - out_w + 1, (batch,), generator=generator)
    rows = (top[:, None] + torch.arange(out_h)).to(x.device)  # (B, h)
    cols = (left[:, None] + torch.arange(out_w)).to(x.device)  # (B, w)
    samples = torch.arange(batch, device=x.device)[:, None, None]

    def window(padded: torch.Tensor) -> torch.Tensor:  # (B, H, W, ...) → (B, h, w, ...)
        return padded[samples, rows[:, :, None], cols[:, None, :]]

    cut = window(F.pad(x, (padding,) * 4).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    cut_masks = window(F.pad(masks, (padding,) * 4)) if masks is not None else None
    return cut.contiguous(), cut_masks


def _rotate(x: torch.Tensor, degrees: float, generator: torch.Generator,
            masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    angle = _uniform(len(x), -degrees, degrees, generator, x) * (math.pi / 180)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    turned = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    if masks is None:
        return turned, None
    classes = F.grid_sample(masks[:, None].to(x.dtype), grid, mode="nearest",
                            align_corners=False, padding_mode="zeros")
    return turned, classes[:, 0].round().to(masks.dtype)


def _jitter(x: torch.Tensor, spec: object, generator: torch.Generator) -> torch.Tensor:
    batch = len(x)
    brightness = getattr(spec, "brightness", 0.0)
    contrast = getattr(spec, "contrast", 0.0)
    saturation = getattr(spec, "saturation", 0.0)
    if brightness > 0:
        x = x * _uniform(batch, 1 - brightness, 1 + brightness, generator, x)[:, None, None, None]
    if contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        factor = _uniform(batch, 1 - contrast, 1 + contrast, generator, x)[:, None, None, None]
        x = (x - mean) * factor + mean
    if saturation > 0 and x.shape[1] == 3:
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        factor = _uniform(batch, 1 - saturation, 1 + saturation, generator, x)[:, None, None, None]
        x = (x - gray) * factor + gray
    hue = getattr(spec, "hue", 0.0)
    if hue > 0 and x.shape[1] == 3:
        x = _shift_hue(x, _uniform(batch, -hue, hue, generator, x))
    return x


def _shift_hue(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by `shift` turns (RGB → HSV → RGB, all vectorised)."""
    r, g, b = rgb.unbind(1)  # (B, H, W) each
    high, low = rgb.max(1).values, rgb.min(1).values
    chroma = high - low
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(high == r, ((g - b) / safe) % 6,
                      torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue))
    hue = (hue + shift[:, None, None]) % 1.0
    # HSV → RGB with value `high` and chroma `chroma`: f(n) = v - c·clamp(min(k, 4-k), 0, 1)
    channels = []
    for n in (5, 3, 1):
        k = (n + hue * 6) % 6
        channels.append(high - chroma * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(channels, 1)


def _sequences(x: torch.Tensor, spec: SequenceAugment,
               generator: torch.Generator) -> torch.Tensor:
    batch, steps, _ = x.shape
    if spec.time_scale is not None:
        scale = _uniform(batch, spec.time_scale[0], spec.time_scale[1], generator, x)
        # stretch along time with grid_sample: the sequence as a (F, 1, T) image
        position = torch.linspace(-1, 1, steps, device=x.device)[None, :] / scale[:, None]
        grid = torch.stack([position, torch.zeros_like(position)], -1)[:, None]  # (B,1,T,2)
        image = x.transpose(1, 2)[:, :, None, :]  # (B, F, 1, T)
        x = F.grid_sample(image, grid.to(x.dtype), align_corners=True,
                          padding_mode="border")[:, :, 0].transpose(1, 2)
    if spec.time_shift is not None:
        shift = torch.randint(-spec.time_shift, spec.time_shift + 1, (batch,),
                              generator=generator).to(x.device)
        index = (torch.arange(steps, device=x.device)[None, :] - shift[:, None]).clamp(
            0, steps - 1)  # shifted, repeating the edge value
        x = x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))
    if spec.noise is not None:
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x = x + noise * spec.noise
    return x
