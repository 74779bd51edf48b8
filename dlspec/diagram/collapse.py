"""`--depth N`: clusters nested deeper than N levels become single boxes.

Depth counts as torchinfo's does: the layers and groups written directly in `network:`
are level 1. With depth 1 every top-level group is one box; with depth 2 the top-level
groups are drawn as clusters and the groups inside them are boxes; and so on. A box
keeps the group's name, block call, ×N, output shape and the sum of its parameters.
"""

from __future__ import annotations

import copy

from dlspec.diagram.model import Cluster, Diagram, DiagramEdge, DiagramNode


def collapse(diagram: Diagram, depth: int) -> Diagram:
    """The diagram with every cluster at nesting level `depth` drawn as one node."""
    networks = copy.deepcopy(diagram.networks)
    owner: dict[str, str] = {}  # node id → the group box it now lies in
    groups: list[DiagramNode] = []
    for network in networks:
        _collapse_items(network, 1, depth, owner, groups)
    edges = _merge_edges(diagram.edges, owner)
    for group in groups:
        group.shape = _group_shape(group.id, diagram.edges, owner)
    return Diagram(diagram.title, diagram.description, networks, edges,
                   diagram.shapes)


def _collapse_items(cluster: Cluster, level: int, depth: int, owner: dict[str, str],
                    groups: list[DiagramNode]) -> None:
    for index, item in enumerate(cluster.items):
        if not isinstance(item, Cluster):
            continue
        if level >= depth:
            group = _group_node(item)
            for node in item.nodes():
                owner[node.id] = group.id
            groups.append(group)
            cluster.items[index] = group
        else:
            _collapse_items(item, level + 1, depth, owner, groups)


def _group_node(cluster: Cluster) -> DiagramNode:
    label = cluster.label if cluster.kind in ("block", "repeat") else cluster.kind
    return DiagramNode(
        id=cluster.id.removeprefix("cluster_") + "/group", name=cluster.name,
        full_name=cluster.full_name, kind=cluster.kind, role="group", family="group",
        details=label, params=cluster.params, frozen=cluster.frozen, copies=cluster.copies)


def _merge_edges(edges: list[DiagramEdge], owner: dict[str, str]) -> list[DiagramEdge]:
    """Edges between the new boxes: inner ones dropped, parallel ones merged."""
    merged: dict[tuple[str, str], DiagramEdge] = {}
    for edge in edges:
        source = owner.get(edge.source, edge.source)
        target = owner.get(edge.target, edge.target)
        if source == target:
            continue
        kept = merged.setdefault((source, target),
                                 DiagramEdge(source, target, edge.shape, edge.skip))
        kept.skip = kept.skip and edge.skip
    return list(merged.values())


def _group_shape(group: str, edges: list[DiagramEdge], owner: dict[str, str]) -> str | None:
    """The shape(s) of what leaves a group; None without shape inference."""
    shapes: dict[str, None] = {}
    for edge in edges:
        if owner.get(edge.source) == group and owner.get(edge.target) != group and edge.shape:
            shapes.setdefault(edge.shape, None)
    return ", ".join(shapes) or None
