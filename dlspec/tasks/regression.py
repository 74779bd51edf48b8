"""`task: regression`: values a sample (mean squared error)."""

from __future__ import annotations

from dlspec.tasks.registry import TaskTraits, register_task


@register_task
class Regression(TaskTraits):
    """Values a sample (mean squared error)."""

    name = "regression"
    summary = "values a sample (mean squared error)"
    default_metrics = ('mae',)
