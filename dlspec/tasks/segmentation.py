"""`task: segmentation`: a class a pixel (masks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask

if TYPE_CHECKING:
    import torch

    from dlspec.spec.sections import AugmentConfig


@register_task
class Segmentation(SupervisedTask):
    """A class a pixel: (C, H, W) logits against an (H, W) map of class indices."""

    name = "segmentation"
    example = "specs/unet_small.yaml"
    example_variant = "shapes"
    summary = "a class a pixel (masks)"
    classifies_positions = True
    classifies_pixels = True
    default_metrics = ("pixel_accuracy", "iou")

    def align(self, outputs: torch.Tensor, target: torch.Tensor,
              binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W) class maps against (B, C, H, W) logits; a binary mask like the logits."""
        if not binary:
            return outputs, target.long()
        return outputs, target.reshape(outputs.shape).to(outputs.dtype)

    def augment(self, inputs: list[torch.Tensor], target: torch.Tensor,
                augment: AugmentConfig, order: torch.Generator,
                stats: list[Any]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Images and their masks moved together (flips, crops); colours change images only."""
        from dlspec.data.augment import augment_with_masks

        inputs, moved = augment_with_masks(inputs, target, augment, order, stats)
        return inputs, moved if moved is not None else target
