"""Fork points: where one tensor enters a residual or parallel cluster several times.

A residual's input feeds both its body and its shortcut. Drawn as two edges from a node
outside the cluster, the shortcut would be routed around the cluster's border; a small
fork point inside the cluster takes the tensor in once and sends it on to body and
shortcut, so the skip edge runs beside the body, inside the cluster.
"""

from __future__ import annotations

import copy
from collections import defaultdict

from dlspec.diagram.model import Cluster, Diagram, DiagramEdge, DiagramNode

FORKED = ("residual", "parallel")


def add_forks(diagram: Diagram) -> Diagram:
    """The diagram with a fork point in every residual or parallel cluster entered twice."""
    networks = copy.deepcopy(diagram.networks)
    edges = list(diagram.edges)
    for network in networks:
        for cluster in network.clusters():  # outer clusters first: their forks feed inner ones
            if cluster.kind in FORKED:
                edges = _fork(cluster, edges)
    return Diagram(diagram.title, diagram.description, networks, edges, diagram.shapes)


def _fork(cluster: Cluster, edges: list[DiagramEdge]) -> list[DiagramEdge]:
    """Route the tensors that enter `cluster` more than once through a fork point each."""
    inside = {node.id for node in cluster.nodes()}
    entering: dict[str, list[int]] = defaultdict(list)  # source → indices into edges
    for index, edge in enumerate(edges):
        if edge.source not in inside and edge.target in inside:
            entering[edge.source].append(index)
    forked = {i for group in entering.values() if len(group) > 1 for i in group}
    made: dict[str, str] = {}
    out: list[DiagramEdge] = []
    for index, edge in enumerate(edges):
        if index not in forked:
            out.append(edge)
            continue
        if edge.source not in made:
            fork = DiagramNode(f"{cluster.id}/fork{len(made) or ''}", "", "", "fork", "fork",
                               "fork", shape=edge.shape)
            cluster.items.insert(len(made), fork)
            made[edge.source] = fork.id
            out.append(DiagramEdge(edge.source, fork.id, edge.shape))
        out.append(DiagramEdge(made[edge.source], edge.target, None, edge.skip))
    return out
