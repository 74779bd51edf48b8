"""`task: cyclegan`: two generators translating between two image domains."""

from __future__ import annotations

from dlspec.tasks.registry import TaskTraits, register_task


@register_task
class CycleGan(TaskTraits):
    """Two generators translating between two image domains, each against a discriminator."""

    name = "cyclegan"
    summary = "two generators translating between two image domains, each against a discriminator"
    several_networks = True
