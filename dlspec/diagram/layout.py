"""Resolved graphs → the neutral Diagram: clusters from scopes, repeats folded, skips found.

Every node of a `Graph` carries the scopes it was expanded in (block, residual, parallel,
sequential, repeat). Each scope becomes a cluster. A repeat of N copies is folded by
default: only copy 0 is drawn, in a cluster marked ×N, and every other copy's nodes are
aliased onto copy 0's, so edges from the last copy to the layers after it are drawn from
copy 0. With shapes, a hidden pass-through (a `shortcut: project` whose shapes already
agree) is dropped and its edges joined up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dlspec.diagram.model import Cluster, Diagram, DiagramEdge, DiagramNode
from dlspec.graph import Graph, Node, NodeInfo, Scope, ShapedGraph
from dlspec.layers.registry import LayerKind, lookup_kind

#: families whose kinds never hold parameters (their frozen flag means nothing)
WEIGHTLESS = frozenset({"activation", "regularization", "reshape", "merge", "pooling",
                        "resample"})


def build_diagram(networks: Mapping[str, Graph | ShapedGraph], title: str,
                  description: str = "", expand: bool = False) -> Diagram:
    """Lay out every network as clusters of nodes; repeats folded unless `expand`.

    Example:
        >>> diagram = build_diagram(dlspec.shapes(spec), spec.name)
        >>> [c.name for c in diagram.networks[0].clusters()][:2]
        ['layer1', 'first']
    """
    diagram = Diagram(title, description,
                      shapes=all(isinstance(g, ShapedGraph) for g in networks.values()))
    many = len(networks) > 1
    for name, graph in networks.items():
        plain = graph.graph if isinstance(graph, ShapedGraph) else graph
        shaped = graph if isinstance(graph, ShapedGraph) else None
        prefix = f"{name}/" if many else ""
        root, edges = _NetworkLayout(plain, shaped, prefix, expand).build()
        diagram.networks.append(root)
        diagram.edges += edges
    return diagram


@dataclass
class _Place:
    """Where a scope is drawn: its cluster, and the name prefix its nodes drop."""

    cluster: Cluster
    prefix: str


@dataclass
class _NetworkLayout:
    """The layout of one network (a class only to share its lookup tables)."""

    graph: Graph
    shaped: ShapedGraph | None
    prefix: str
    expand: bool
    alias: dict[str, str] = field(default_factory=dict)  # graph name → drawn node id
    places: dict[str, _Place] = field(default_factory=dict)  # canonical scope name → place
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # key → (all, trainable)
    origin: dict[str, str] = field(default_factory=dict)  # pass-through → what it passes on

    def build(self) -> tuple[Cluster, list[DiagramEdge]]:
        """The network's root cluster and its edges."""
        graph = self.graph
        root = Cluster(f"cluster_{graph.name}", graph.name, graph.name, "network")
        for name in graph.inputs:
            root.items.append(self._input_node(name))
            self.alias[name] = self.prefix + name
        for node in graph.nodes:
            self._place(node, root)
        for name, source in graph.outputs.items():
            root.items.append(self._output_node(name, source))
        _mark_frozen(root)
        if self.shaped is not None:
            root.params, root.trainable = self.shaped.total_params, self.shaped.trainable_params
            for key, place in self.places.items():
                place.cluster.params, place.cluster.trainable = self.counts.get(key, (0, 0))
        return root, self._edges()

    # --- nodes ----------------------------------------------------------------------

    def _place(self, node: Node, root: Cluster) -> None:
        """Draw `node` in its cluster, or alias it onto the node that stands for it."""
        chain = self._chain(node)
        self._count(node, chain)
        if self._passes_through(node):
            self.alias[node.name] = self.alias[node.inputs[0]]
            self.origin[node.name] = self.origin.get(node.inputs[0], node.inputs[0])
            return
        canonical = self.canonical(node.name, node.scopes)
        if canonical != node.name:  # a later copy of a folded repeat: copy 0 stands for it
            self.alias[node.name] = self.alias.get(canonical, self.prefix + canonical)
            return
        self.alias[node.name] = self.prefix + node.name
        place = _Place(root, "")
        for key, scope, merged in chain:
            if key not in self.places:
                cluster = self._cluster(scope, key, merged)
                place.cluster.items.append(cluster)
                self.places[key] = _Place(cluster, key + (".0." if merged else "."))
            place = self.places[key]
        place.cluster.items.append(self._layer_node(node, self._local_name(node.name, place)))

    def _count(self, node: Node, chain: list[tuple[str, Scope, Scope | None]]) -> None:
        """Add the node's parameters to every cluster it lies in (folded copies too)."""
        info = self.shaped.info.get(node.name) if self.shaped else None
        if info is None:
            return
        name = node.name.split(".")
        for key, _, _ in chain:
            if key.split(".") != name[:key.count(".") + 1]:
                break  # inside a later copy of a fold: the clusters from here show copy 0
            params, trainable = self.counts.get(key, (0, 0))
            self.counts[key] = (params + info.params, trainable + info.trainable_params)

    def _passes_through(self, node: Node) -> bool:
        """A hidden kind (the residual projection) that shape inference found to be a no-op."""
        if self.shaped is None or node.name not in self.shaped.info:
            return False
        kind = lookup_kind(node.kind)
        return bool(kind and kind.hidden and self.shaped.info[node.name].build is None)

    def _layer_node(self, node: Node, local: str) -> DiagramNode:
        kind = lookup_kind(node.kind)
        family = kind.family if kind else "layer"
        info = self.shaped.info.get(node.name) if self.shaped else None
        params = info.params if info else None
        weighted = params > 0 if params is not None else family not in WEIGHTLESS
        return DiagramNode(
            self.prefix + node.name, local, node.name, node.kind, "layer", family,
            self._details(kind, node, info), str(info.output) if info else None, params,
            frozen=not node.trainable and weighted)

    def _details(self, kind: LayerKind | None, node: Node, info: NodeInfo | None) -> str:
        """The kind's hyperparameters; refined by the shapes where the kind can (a shortcut
        projection says its rank: `1×1×1 projection` for 3-D maps)."""
        if kind is None:
            return ""
        if info is not None and self.shaped is not None:
            inputs = [self.shaped.tensors[name].shape for name in node.inputs]
            return kind.describe_shapes(node.params, inputs, info.output.shape)
        return kind.describe(node.params)

    def _input_node(self, name: str) -> DiagramNode:
        decl = self.graph.inputs[name]
        shape = "×".join(map(str, decl.shape)) or "scalar"
        details = "" if decl.dtype == "float32" else decl.dtype
        return DiagramNode(self.prefix + name, name, name, "input", "input", "input", details,
                           shape)

    def _output_node(self, name: str, source: str) -> DiagramNode:
        tensor = self.shaped.tensors.get(source) if self.shaped else None
        return DiagramNode(f"{self.prefix}#output/{name}", name, name, "output", "output",
                           "output", "", str(tensor) if tensor else None)

    # --- clusters ---------------------------------------------------------------------

    def canonical(self, name: str, scopes: tuple[Scope, ...]) -> str:
        """`name` with the copy index of every folded repeat it lies in set to 0."""
        if self.expand:
            return name
        parts = name.split(".")
        for scope in scopes:
            if scope.kind == "repeat":
                parts[scope.name.count(".") + 1] = "0"
        return ".".join(parts)

    def _chain(self, node: Node) -> list[tuple[str, Scope, Scope | None]]:
        """(cluster key, scope, merged copy-0 scope) for each cluster around `node`."""
        scopes = node.scopes
        canonical = self.canonical(node.name, scopes).split(".")
        chain = []
        index = 0
        while index < len(scopes):
            scope = scopes[index]
            merged = self._merged_copy(scopes, index)
            chain.append((".".join(canonical[:scope.name.count(".") + 1]), scope, merged))
            index += 2 if merged is not None else 1
        return chain

    def _local_name(self, name: str, place: _Place) -> str:
        """The name of a node inside its cluster: "conv1" in "layer1.first.residual"."""
        local = name.removeprefix(place.prefix)
        if local.isdigit() and place.cluster.kind == "repeat":  # a repeat of one layer
            return place.cluster.name if place.cluster.folded else f"{place.cluster.name}.{local}"
        return local

    def _merged_copy(self, scopes: tuple[Scope, ...], index: int) -> Scope | None:
        """The copy-0 scope a folded repeat at `index` is drawn as one cluster with."""
        scope = scopes[index]
        if self.expand or scope.kind != "repeat" or index + 1 >= len(scopes):
            return None
        child = scopes[index + 1]
        return child if child.name == scope.name + ".0" else None

    def _cluster(self, scope: Scope, key: str, merged: Scope | None) -> Cluster:
        local = key.rsplit(".", 1)[-1]
        cluster = Cluster(f"cluster_{self.prefix}{key}", local, key, scope.kind, scope.label)
        if scope.kind == "repeat":
            cluster.copies = _copies(scope.label)
            cluster.folded = not self.expand
            cluster.label = merged.label if merged is not None else ""
            if merged is not None and merged.kind != "block":
                cluster.label = merged.kind
            if scope.note is not None:  # copy 0 stands for the others, which it differs from
                cluster.label = scope.note
        return cluster

    # --- edges ------------------------------------------------------------------------

    def _edges(self) -> list[DiagramEdge]:
        """Every drawn edge once: aliased, between-copy edges of folds and self-loops dropped."""
        skips = skip_edges(self.graph)
        edges: dict[tuple[str, str], DiagramEdge] = {}
        for node in self.graph.nodes:
            for source in node.inputs:
                if self._between_copies(self.origin.get(source, source), node):
                    continue
                self._add_edge(edges, source, self.alias.get(node.name),
                               (source, node.name) in skips)
        for name, source in self.graph.outputs.items():
            self._add_edge(edges, source, f"{self.prefix}#output/{name}", False)
        return list(edges.values())

    def _add_edge(self, edges: dict[tuple[str, str], DiagramEdge], source: str,
                  target: str | None, skip: bool) -> None:
        tail = self.alias.get(source)
        if tail is None or target is None or tail == target:
            return
        tensor = self.shaped.tensors.get(source) if self.shaped else None
        edge = edges.setdefault((tail, target), DiagramEdge(tail, target,
                                                            str(tensor) if tensor else None,
                                                            skip))
        edge.skip = edge.skip and skip  # any plain path between the two makes it plain

    def _between_copies(self, source: str, node: Node) -> bool:
        """An edge from one copy of a folded repeat into the next."""
        if self.expand:
            return False
        target = node.name.split(".")
        parts = source.split(".")
        for scope in node.scopes:
            if scope.kind == "repeat" and source.startswith(scope.name + "."):
                position = scope.name.count(".") + 1
                if parts[position] != target[position]:
                    return True
        return False


def skip_edges(graph: Graph) -> set[tuple[str, str]]:
    """The edges (source, target) that skip around a body.

    Those are a residual's shortcut path (into it, along it and into the merge), and any
    merge input that is also an ancestor of another input of the same merge (a U-Net's
    encoder map concatenated after the decoder's upsampling).
    """
    ancestors = _ancestor_bits(graph)
    order = {name: i for i, name in enumerate([*graph.inputs, *(n.name for n in graph.nodes)])}
    # a projection shortcut is a skip path wherever it is (a flat residual has no scope)
    projections = {n.name for n in graph.nodes if n.kind == "projection"}
    skips: set[tuple[str, str]] = set()
    for node in graph.nodes:
        residual = next((s for s in reversed(node.scopes) if s.kind == "residual"), None)
        for index, source in enumerate(node.inputs):
            if _skips(node, index, residual) or node.name in projections \
                    or source in projections or any(
                    other != source and ancestors.get(other, 0) >> order[source] & 1
                    for other in node.inputs):
                skips.add((source, node.name))
    return skips


def _ancestor_bits(graph: Graph) -> dict[str, int]:
    """For every node, the set of everything upstream as bits of the graph order."""
    order = {name: i for i, name in enumerate([*graph.inputs, *(n.name for n in graph.nodes)])}
    bits: dict[str, int] = {name: 0 for name in graph.inputs}
    for node in graph.nodes:
        value = 0
        for source in node.inputs:
            value |= bits.get(source, 0) | 1 << order[source]
        bits[node.name] = value
    return bits


def _skips(node: Node, index: int, residual: Scope | None) -> bool:
    """Whether input `index` of `node` is a residual's shortcut (into, along or out of it)."""
    if residual is None:
        return False
    if node.scopes[-1] == residual and node.name == f"{residual.name}.{node.kind}":
        return index > 0  # the merge: input 0 is the body, the others the shortcut
    return _within(node.name, residual.name + ".shortcut")


def _within(name: str, scope: str) -> bool:
    return name == scope or name.startswith(scope + ".")


def _copies(label: str) -> int | None:
    match = re.fullmatch(r"×(\d+)", label)
    return int(match.group(1)) if match else None


def _mark_frozen(cluster: Cluster) -> None:
    """A cluster is frozen when it has weighted layers and all of them are frozen."""
    for inner in [cluster, *cluster.clusters()]:
        weighted = [n for n in inner.nodes() if n.role == "layer" and (
            n.params > 0 if n.params is not None else n.family not in WEIGHTLESS)]
        inner.frozen = bool(weighted) and all(n.frozen for n in weighted)
