"""`task: classification`: one class a sample, from logits (cross-entropy)."""

from __future__ import annotations

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask


@register_task
class Classification(SupervisedTask):
    """One class a sample, from logits (cross-entropy)."""

    name = "classification"
    example = "specs/lenet5.yaml"
    summary = "one class a sample, from logits (cross-entropy)"
    classifies = True
    default_metrics = ("accuracy",)
