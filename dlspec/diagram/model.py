"""The neutral picture of a network: clusters of nodes and the edges between them.

`layout` builds it from resolved graphs (folding repeats, dropping pass-throughs),
`collapse` shortens it to a depth, and `render` turns it into Graphviz. Nothing here
knows about Graphviz or torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["layer", "input", "output", "group", "fork"]


@dataclass
class DiagramNode:
    """One box: a layer, a network input or output, or a collapsed group of layers."""

    id: str  # unique in the whole diagram: "<network>/<qualified name>"
    name: str  # what the box calls it: the name inside its cluster ("conv1")
    full_name: str  # the qualified name ("layer1.first.residual.conv1")
    kind: str  # the layer kind; "input" / "output"; the group's kind for groups
    role: Role = "layer"
    family: str = ""  # colour key: the kind's registry family, or the role
    details: str = ""  # the defining hyperparameters ("5×5, 6 ch") or a block call
    shape: str | None = None  # the output shape ("6×28×28"); None without shape inference
    params: int | None = None  # None without shape inference
    frozen: bool = False  # has parameters, and none of them train
    copies: int | None = None  # a collapsed repeat: how many copies it stands for


@dataclass
class DiagramEdge:
    """A tensor flowing from one box to another."""

    source: str
    target: str
    shape: str | None = None
    skip: bool = False  # a skip connection around a body (residual shortcut, U-Net concat)


@dataclass
class Cluster:
    """A named group drawn as a box around its items: block, structure, repeat or network."""

    id: str
    name: str  # the local name ("layer1", "residual", "rest")
    full_name: str
    kind: str  # "network", "block", "residual", "parallel", "sequential", "repeat"
    label: str = ""  # the block call ("basic(channels=64, stride=1)") or a branch key
    copies: int | None = None  # N of a repeat (folded or drawn in full)
    folded: bool = False  # only the first of `copies` is drawn
    items: list[DiagramNode | Cluster] = field(default_factory=list)
    params: int | None = None  # every layer inside, all copies of a fold included
    trainable: int | None = None  # of those, the ones training updates
    frozen: bool = False  # has parameters, and none of them train

    def nodes(self) -> Iterator[DiagramNode]:
        """Every node inside, at any depth."""
        for item in self.items:
            if isinstance(item, Cluster):
                yield from item.nodes()
            else:
                yield item

    def clusters(self) -> Iterator[Cluster]:
        """Every cluster inside, at any depth (not this one)."""
        for item in self.items:
            if isinstance(item, Cluster):
                yield item
                yield from item.clusters()


@dataclass
class Diagram:
    """What to draw: one root cluster per network, and the edges between all boxes."""

    title: str
    description: str = ""
    networks: list[Cluster] = field(default_factory=list)
    edges: list[DiagramEdge] = field(default_factory=list)
    shapes: bool = True  # shapes and parameter counts were inferred

    def nodes(self) -> Iterator[DiagramNode]:
        """Every node of every network."""
        for network in self.networks:
            yield from network.nodes()

    def families(self) -> list[str]:
        """The layer families present, in first-seen order (for the legend)."""
        seen: dict[str, None] = {}
        for node in self.nodes():
            if node.role in ("layer", "group"):
                seen.setdefault(node.family, None)
        return list(seen)

    @property
    def total_params(self) -> int | None:
        """Parameters of all networks (None without shape inference)."""
        counts = [n.params for n in self.networks]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)
