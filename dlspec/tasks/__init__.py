"""Training tasks as plug-ins: one registered file each (see `registry.py`).

Importing this package registers every built-in task; it imports no torch.
"""

from dlspec.tasks import (  # noqa: F401  (each import registers its task)
    classification,
    cyclegan,
    forecasting,
    gan,
    metric_learning,
    reconstruction,
    regression,
    segmentation,
    sequence_classification,
    token_classification,
)
from dlspec.tasks.base import Task
from dlspec.tasks.registry import (
    TASKS,
    TaskTraits,
    classifying_tasks,
    find_task,
    register_task,
    suggest_task,
    task_has,
    task_names,
    tasks_with_classes,
)


def get_task(name: str) -> Task:
    """The registered task `name` (the spec validator has checked that it exists)."""
    task = TASKS[name]
    assert issubclass(task, Task)
    return task()


__all__ = [
    "TASKS",
    "Task",
    "get_task",
    "TaskTraits",
    "classifying_tasks",
    "find_task",
    "register_task",
    "suggest_task",
    "task_names",
    "task_has",
    "tasks_with_classes",
]
