"""`dlspec predict` for segmentation models: a mask per sample instead of a table row.

A segmentation model (`dlspec_task` type `segmentation`) outputs logits per class and pixel,
(N, C, H, W), or one binary logit per pixel, (N, 1, H, W). Its predictions are class maps
(N, H, W): `-o masks.npy` writes them as one array, any other `-o` (default `masks/`) names a
folder of PNG files, one per sample, with class k drawn as grey level k · 255 / (classes - 1).
Masks of images keep the input's path below its folder (`a/1.jpg` → `masks/a/1.png`; see
`writers.image_paths`), so inputs of one name in two sub-folders stay apart. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlspec.errors import Problem, SpecError
from dlspec.runtime.writers import check_output, image_paths, output_error


def class_maps(logits: np.ndarray) -> np.ndarray:
    """(N, H, W) class indices from (N, C, H, W) logits: argmax, or for one binary logit
    `logit > 0` (probability above 0.5), as training's metrics read them."""
    if logits.ndim != 4:
        raise SpecError(Problem((), f"a segmentation model's output is (N, classes, H, W); "
                                f"this one is {logits.shape}"))
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(np.uint8)
    return logits.argmax(axis=1).astype(np.uint8 if logits.shape[1] <= 256 else np.int64)


def write_masks(masks: np.ndarray, classes: int, output: Path | None,
                names: Sequence[str] | None = None) -> list[Path]:
    """Masks as one .npy file or a folder of PNG files; the paths written."""
    if output is not None and output.suffix.lower() == ".npy":
        check_output(output, folder=False)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            np.save(output, masks)
        except OSError as error:
            raise output_error(output, error) from None
        return [output]
    from PIL import Image

    folder = output or Path("masks")
    check_output(folder, folder=True)
    scale = 255 // max(classes - 1, 1)
    paths = image_paths(folder, names, len(masks), "mask")
    for mask, path in zip(masks, paths, strict=True):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((mask.astype(np.int64) * scale).clip(0, 255).astype(np.uint8)
                            ).save(path)
        except OSError as error:
            raise output_error(path, error) from None
    return paths
