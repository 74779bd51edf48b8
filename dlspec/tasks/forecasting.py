"""`task: forecasting`: the next values of a sequence."""

from __future__ import annotations

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask


@register_task
class Forecasting(SupervisedTask):
    """The next values of a sequence."""

    name = "forecasting"
    example = "specs/gru.yaml"
    summary = "the next values of a sequence"
    predicts_values = True
    default_metrics = ("mae",)
