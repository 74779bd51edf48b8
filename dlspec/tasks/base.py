"""What a training task is: its traits (registry.py) and what it does in each stage.

A task file defines one subclass of `Task`, registered with `@register_task`:

    @register_task
    class Regression(SupervisedTask):
        name = "regression"
        summary = "values a sample (mean squared error)"
        default_metrics = ("mae",)

Stages ask it: `check` (after shape inference: the networks against each other, located),
`exported` (which networks `dlspec export` writes), and the engine `start`s its training
`Session` (dlspec.train.engine): its batches, steps, metrics, checkpoint extras, outputs and
report lines. Methods import torch inside, so this module and the registry stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlspec.tasks.registry import TaskTraits

if TYPE_CHECKING:
    from dlspec.graph import Graph, ShapedGraph
    from dlspec.spec.model import Spec
    from dlspec.train.engine import Run, Session


class Task(TaskTraits):
    """A training task: the engine's plug-in."""

    # trains as several data-parallel processes (--nproc)
    data_parallel: bool = False

    def check(self, spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
        """Problems between the spec's shaped networks and the task (SpecError, located
        by the caller); run by `dlspec check` and before training. None by default."""

    def exported(self, networks: dict[str, Graph]) -> dict[str, Graph]:
        """The networks `dlspec export` writes when none is named: all of them."""
        return networks

    def start(self, run: Run) -> Session:
        """Prepare data and networks and return the session the engine trains."""
        raise NotImplementedError
