"""The closed table of training tasks: `task: NAME` in a spec is looked up here, never imported.

A task is one small class in one file, registered with `@register_task`. Its class attributes
are torch-free facts every stage may ask (the spec validator, the exporter, the runtime's
metadata reader); what it does in training (`dlspec.train.engine` calls it) imports torch
inside its methods, so `dlspec check --no-shapes` and `dlspec predict` stay light.
"""

from __future__ import annotations

import difflib
from typing import ClassVar


class TaskTraits:
    """What is known of a task without training it."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for the reference and `dlspec check`
    example: ClassVar[str] = ""  # a spec under specs/ that trains with this task
    example_variant: ClassVar[str | None] = None  # the example's variant that trains on
                                                   # built-in data, when the spec's own doesn't
    # targets are one class index a sample: labels, threshold and accuracy apply
    classifies: ClassVar[bool] = False
    # targets are a class per position (a pixel, a time step): num_classes and labels apply
    classifies_positions: ClassVar[bool] = False
    # ... per pixel: targets are masks, which move with the images and predict as masks
    classifies_pixels: ClassVar[bool] = False
    # targets are values (regression losses and metrics); data with classes is refused
    predicts_values: ClassVar[bool] = False
    # the data is two unpaired image domains (an image folder's two sub-folders)
    two_domains: ClassVar[bool] = False
    # outputs are embeddings, trained by comparing samples with each other (metric losses);
    # targets are classes, which say only which samples belong together
    embeds: ClassVar[bool] = False
    # trains several networks together (`networks:`), not one
    several_networks: ClassVar[bool] = False
    # the metrics a run reports when `train.metrics` is not given
    default_metrics: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def with_classes(cls) -> bool:
        """Whether `num_classes` and `labels` apply: a class per sample or per position."""
        return cls.classifies or cls.classifies_positions


TASKS: dict[str, type[TaskTraits]] = {}


def register_task(cls: type[TaskTraits]) -> type[TaskTraits]:
    """Add a task class to the table under its `name`; a name is registered once."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no task name")
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    """Every registered task name, in registration order."""
    return list(TASKS)


def find_task(name: str) -> type[TaskTraits] | None:
    """The task registered as `name`, or None."""
    return TASKS.get(name)


def suggest_task(name: str) -> str:
    """A hint for an unknown task name: the closest registered one, or the list."""
    close = difflib.get_close_matches(name, TASKS, n=1)
    return f"did you mean {close[0]}?" if close else "tasks: " + ", ".join(TASKS)


def classifying_tasks() -> tuple[str, ...]:
    """The tasks whose targets are one class index a sample (labels, threshold, accuracy)."""
    return tuple(name for name, task in TASKS.items() if task.classifies)


def task_has(name: str | None, trait: str) -> bool:
    """Whether task `name` is registered and has the boolean `trait` (False for None)."""
    task = TASKS.get(name) if name is not None else None
    return bool(getattr(task, trait)) if task is not None else False


def tasks_with_classes() -> tuple[str, ...]:
    """The tasks whose spec may give `num_classes` and `labels`."""
    return tuple(name for name, task in TASKS.items() if task.with_classes())
