"""`task: segmentation`: a class a pixel (masks)."""

from __future__ import annotations

from dlspec.tasks.registry import TaskTraits, register_task


@register_task
class Segmentation(TaskTraits):
    """A class a pixel (masks)."""

    name = "segmentation"
    summary = "a class a pixel (masks)"
    classifies_positions = True
    default_metrics = ('pixel_accuracy', 'mean_iou')
