"""Training tasks as plug-ins: one registered file each (see `registry.py`).

Importing this package registers every built-in task; it imports no torch.
"""

from dlspec.tasks import (  # noqa: F401  (each import registers its task)
    classification,
    cyclegan,
    forecasting,
    gan,
    regression,
    segmentation,
    sequence_classification,
)
from dlspec.tasks.registry import (
    TASKS,
    TaskTraits,
    classifying_tasks,
    find_task,
    register_task,
    suggest_task,
    task_names,
    tasks_with_classes,
)

__all__ = [
    "TASKS",
    "TaskTraits",
    "classifying_tasks",
    "find_task",
    "register_task",
    "suggest_task",
    "task_names",
    "tasks_with_classes",
]
