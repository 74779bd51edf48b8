"""`task: gan`: a generator trained against a discriminator (dlspec.train.gan)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlspec.tasks.base import Task
from dlspec.tasks.registry import register_task

if TYPE_CHECKING:
    from dlspec.graph import Graph, ShapedGraph
    from dlspec.spec.model import Spec
    from dlspec.train.engine import Run, Session


@register_task
class Gan(Task):
    """A generator trained against a discriminator; the generator is what is exported."""

    name = "gan"
    example = "specs/wgan_gp.yaml"
    summary = "a generator trained against a discriminator"
    several_networks = True

    def check(self, spec: Spec, shaped: dict[str, ShapedGraph]) -> None:
        """The generator's samples fit the discriminator; labels, latents, objectives."""
        from dlspec.train.gan_checks import check_gan

        check_gan(spec, shaped)

    def exported(self, networks: dict[str, Graph]) -> dict[str, Graph]:
        """The generator(s)."""
        return generators(networks)

    def start(self, run: Run) -> Session:
        """Both networks built, the real data loaded: the GAN session."""
        from dlspec.train.gan import start_gan

        return start_gan(run)


def generators(networks: dict[str, Graph]) -> dict[str, Graph]:
    """The networks whose names say they generate (all, when none does)."""
    chosen = {k: v for k, v in networks.items() if "generator" in k}
    return chosen or networks
