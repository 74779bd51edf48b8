"""`task: regression`: values a sample (mean squared error)."""

from __future__ import annotations

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask


@register_task
class Regression(SupervisedTask):
    """Values a sample (mean squared error)."""

    name = "regression"
    example = "specs/rnn.yaml"
    summary = "values a sample (mean squared error)"
    predicts_values = True
    default_metrics = ("mae",)
