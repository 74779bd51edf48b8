"""`task: forecasting`: the next values of a sequence."""

from __future__ import annotations

from dlspec.tasks.registry import TaskTraits, register_task


@register_task
class Forecasting(TaskTraits):
    """The next values of a sequence."""

    name = "forecasting"
    summary = "the next values of a sequence"
    default_metrics = ('mae',)
