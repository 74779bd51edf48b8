"""`task: gan`: a generator trained against a discriminator."""

from __future__ import annotations

from dlspec.tasks.registry import TaskTraits, register_task


@register_task
class Gan(TaskTraits):
    """A generator trained against a discriminator."""

    name = "gan"
    summary = "a generator trained against a discriminator"
    several_networks = True
