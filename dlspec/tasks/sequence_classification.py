"""`task: sequence_classification`: one class a sequence, from logits."""

from __future__ import annotations

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask


@register_task
class SequenceClassification(SupervisedTask):
    """One class a sequence, from logits."""

    name = "sequence_classification"
    example = "specs/bilstm.yaml"
    summary = "one class a sequence, from logits"
    classifies = True
    default_metrics = ("accuracy",)
