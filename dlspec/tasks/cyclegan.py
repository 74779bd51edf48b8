"""`task: cyclegan`: two generators translating between two image domains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlspec.tasks.base import Task
from dlspec.tasks.gan import generators
from dlspec.tasks.registry import register_task

if TYPE_CHECKING:
    from dlspec.graph import Graph, ShapedGraph
    from dlspec.spec.model import Spec
    from dlspec.train.engine import Run, Session


@register_task
class CycleGan(Task):
    """Two generators and two discriminators over unpaired domains (Zhu et al., 2017)."""

    name = "cyclegan"
    example = "specs/cyclegan.yaml"
    summary = "two generators translating between two image domains"
    several_networks = True
    two_domains = True

    def check(self, spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
        """The four networks are there and their images fit each other."""
        from dlspec.train.gan_checks import check_cyclegan

        check_cyclegan(spec, shaped)

    def exported(self, networks: dict[str, Graph]) -> dict[str, Graph]:
        """Both generators."""
        return generators(networks)

    def start(self, run: Run) -> Session:
        """The four networks built, both domains loaded: the CycleGAN session."""
        from dlspec.train.cyclegan import start_cyclegan

        return start_cyclegan(run)
