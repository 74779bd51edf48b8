"""Diagram → graphviz.Digraph → files: the `.dot` source always, the picture when `dot` runs.

The `graphviz` package writes the DOT language and runs Graphviz's `dot` program; a
missing `dot` is reported in the result (never printed), so callers decide what to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlspec.diagram import style
from dlspec.diagram.model import Cluster, Diagram, DiagramEdge, DiagramNode
from dlspec.errors import FileError, Problem, WorkError
from dlspec.user_files import write_user_file

if TYPE_CHECKING:
    import graphviz


LEGEND_COLUMNS = 6


@dataclass(frozen=True)
class RenderOptions:
    """How to draw: direction, shapes on edges, legend."""

    rankdir: str = "TB"
    edge_shapes: bool = False
    legend: bool = True


def to_digraph(diagram: Diagram, options: RenderOptions | None = None) -> graphviz.Digraph:
    """The diagram as a graphviz.Digraph: clusters, styled nodes, edges, title and legend."""
    import graphviz

    options = options or RenderOptions()
    root = graphviz.Digraph(
        diagram.title, graph_attr=_graph_attributes(diagram, options),
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": style.FONT,
                   "fontsize": str(style.FONT_SIZE), "margin": "0.12,0.05",
                   "height": "0.3", "penwidth": "1"},
        edge_attr={"arrowsize": "0.6", "color": "#5f5f5f", "penwidth": "1",
                   "fontname": style.FONT, "fontsize": str(style.SMALL),
                   "fontcolor": style.GREY})
    many = len(diagram.networks) > 1
    for network in diagram.networks:
        if many:
            with root.subgraph(name=network.id) as sub:
                _add_cluster(sub, network)
        else:
            _add_items(root, network.items)
    for edge in diagram.edges:
        _add_edge(root, edge, options.edge_shapes)
    for tail, head in ranking_edges(diagram):
        root.edge(tail, head, style="invis")
    _pin_ends(root, diagram)
    return root


def _pin_ends(graph: graphviz.Digraph, diagram: Diagram) -> None:
    """Inputs on the first rank, outputs on the last (a late input would float mid-way)."""
    for role, rank in (("input", "min"), ("output", "max")):
        ids = [n.id for n in diagram.nodes() if n.role == role]
        if len(ids) > 1 or (ids and role == "input"):
            with graph.subgraph() as same:
                same.attr(rank=rank)
                for node_id in ids:
                    same.node(node_id)


def _graph_attributes(diagram: Diagram, options: RenderOptions) -> dict[str, str]:
    """The heading (title, totals, legend) and the layout's spacing."""
    network = diagram.networks[0] if len(diagram.networks) == 1 else None
    params = diagram.total_params if network is None else network.params
    trainable = network.trainable if network is not None else _total_trainable(diagram)
    heading = style.title_label(diagram.title, diagram.description, params, trainable)
    legend = legend_table(diagram) if options.legend else ""
    if legend:
        heading = (f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="2"><TR><TD>{heading}'
                   f"</TD></TR><TR><TD>{legend}</TD></TR></TABLE>")
    return {"rankdir": options.rankdir, "fontname": style.FONT, "fontsize": str(style.FONT_SIZE),
            "nodesep": "0.25", "ranksep": "0.3", "newrank": "true", "pad": "0.3",
            "bgcolor": "white", "labelloc": "t", "labeljust": "c",
            "label": f"<{heading}>"}


def _total_trainable(diagram: Diagram) -> int | None:
    counts = [n.trainable for n in diagram.networks]
    return None if any(c is None for c in counts) else sum(c or 0 for c in counts)


def _add_items(graph: graphviz.Digraph, items: list[DiagramNode | Cluster]) -> None:
    for item in items:
        if isinstance(item, Cluster):
            with graph.subgraph(name=item.id) as sub:
                _add_cluster(sub, item)
        else:
            label = "" if item.role == "fork" else "<" + style.node_label(item) + ">"
            graph.node(item.id, label, **node_attributes(item))


def _add_cluster(graph: graphviz.Digraph, cluster: Cluster) -> None:
    border, fill, line = style.CLUSTER_STYLES.get(cluster.kind, ("#8c8c8c", "#ffffff",
                                                                  "rounded"))
    if cluster.frozen:
        border, line = style.FROZEN_COLOUR, line if "dashed" in line else line + ",dashed"
    classes = ["cluster-" + cluster.kind, *(["folded"] if cluster.folded else []),
               *(["frozen"] if cluster.frozen else [])]
    graph.attr(label="", style=line, color=border, bgcolor=fill, margin="8", penwidth="1.2",
               tooltip=style.dot_string(cluster.full_name), **{"class": " ".join(classes)})
    graph.node(header_id(cluster), "<" + style.cluster_label(cluster) + ">", shape="plaintext",
               style="", margin="0.02,0.02", height="0.2",
               tooltip=style.dot_string(cluster.full_name),
               **{"class": "cluster-label"})
    _add_items(graph, cluster.items)


def header_id(cluster: Cluster) -> str:
    """The id of the node that carries a cluster's label."""
    return cluster.id + "#label"


def ranking_edges(diagram: Diagram) -> list[tuple[str, str]]:
    """Invisible edges that rank each cluster's label above everything entering the cluster.

    Graphviz routes edges straight through cluster labels; a label drawn as a node inside
    the cluster, ranked between the edge's source and the layers it enters, is avoided by
    every edge like any other node.
    """
    ancestry: dict[str, tuple[str, ...]] = {}  # node id → enclosing cluster ids, outer first
    first: dict[str, str] = {}  # cluster id → the id of its first item
    many = len(diagram.networks) > 1
    for network in diagram.networks:
        _ancestry(network, (network.id,) if many else (), ancestry, first)
    pairs: dict[tuple[str, str], None] = {}
    for edge in diagram.edges:
        outer = set(ancestry.get(edge.source, ()))
        previous = edge.source
        for cluster in ancestry.get(edge.target, ()):
            if cluster not in outer:
                pairs[(previous, cluster + "#label")] = None
                previous = cluster + "#label"
        pairs[(previous, edge.target)] = None
    entered = {head for _, head in pairs}
    for cluster, item in first.items():
        if cluster + "#label" not in entered:  # nothing flows in: the label tops its first item
            pairs[(cluster + "#label", item)] = None
    return [pair for pair in pairs if pair not in {(e.source, e.target) for e in diagram.edges}]


def _ancestry(cluster: Cluster, chain: tuple[str, ...], ancestry: dict[str, tuple[str, ...]],
              first: dict[str, str]) -> None:
    if chain and cluster.items:
        head = cluster.items[0]
        first[cluster.id] = header_id(head) if isinstance(head, Cluster) else head.id
    for item in cluster.items:
        if isinstance(item, Cluster):
            _ancestry(item, (*chain, item.id), ancestry, first)
        else:
            ancestry[item.id] = chain


def node_attributes(node: DiagramNode) -> dict[str, str]:
    """Graphviz attributes of a node: shape, colours, frozen marking, SVG class and tooltip."""
    fill, border = style.colours(node.family)
    attributes = {"fillcolor": fill, "color": border, "tooltip": _tooltip(node),
                  "class": " ".join(_classes(node))}
    if node.role in ("input", "output"):
        attributes.update(fontcolor="white", shape="box", style="rounded,filled,bold")
    elif node.role == "fork":
        attributes.update(shape="point", width="0.07", height="0.07", style="filled",
                          fillcolor=style.SKIP_COLOUR, color=style.SKIP_COLOUR)
    elif node.role == "group":
        attributes.update(shape="box3d", style="filled")
    elif style.is_compact(node):
        attributes.update(fontsize="9", height="0.22", margin="0.08,0.02")
    if node.frozen:
        attributes.update(style=attributes.get("style", "rounded,filled") + ",dashed",
                          color=style.FROZEN_COLOUR, penwidth="2")
    return attributes


def _classes(node: DiagramNode) -> list[str]:
    classes = [node.role, f"kind-{node.kind}"]
    if node.role == "layer":
        classes.append(f"family-{node.family}")
    if node.frozen:
        classes.append("frozen")
    return classes


def _tooltip(node: DiagramNode) -> str:
    parts = [node.full_name, node.kind, node.details, node.shape or ""]
    if node.params:
        parts.append(style.count(node.params))
    return style.dot_string(" · ".join(p for p in parts if p))


def _add_edge(graph: graphviz.Digraph, edge: DiagramEdge, shapes: bool) -> None:
    attributes: dict[str, Any] = {}
    if shapes and edge.shape:
        attributes["label"] = style.dot_string(f" {edge.shape} ")
    if edge.skip:
        attributes.update(color=style.SKIP_COLOUR, style="dashed", penwidth="1.3",
                          tooltip="skip connection", **{"class": "skip"})
    graph.edge(edge.source, edge.target, **attributes)


def legend_table(diagram: Diagram) -> str:
    """A table of the family colours in use, the frozen marking and skip edges ("" if none)."""
    cells = []
    for family in diagram.families():
        fill, border = style.colours(family)
        name = style.FAMILY_NAMES.get(family, family)
        cells.append(f'<TD BGCOLOR="{fill}" COLOR="{border}">{style.escape(name)}</TD>')
    if any(n.frozen for n in diagram.nodes()):
        cells.append(f'<TD STYLE="dashed" COLOR="{style.FROZEN_COLOUR}"><FONT COLOR='
                     f'"{style.FROZEN_COLOUR}">frozen</FONT></TD>')
    if any(e.skip for e in diagram.edges):
        cells.append(f'<TD BORDER="0"><FONT COLOR="{style.SKIP_COLOUR}">- - ▸ skip</FONT></TD>')
    if not cells:
        return ""
    rows = ["".join(cells[i:i + LEGEND_COLUMNS]) for i in range(0, len(cells), LEGEND_COLUMNS)]
    return ('<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="2">'
            + "".join(f"<TR>{row}</TR>" for row in rows) + "</TABLE>")


@dataclass(frozen=True)
class Written:
    """What `write_files` produced."""

    dot: Path
    rendered: Path | None
    dot_missing: bool


def write_files(graph: graphviz.Digraph, dot_path: Path, target: Path | None,
                fmt: str) -> Written:
    """Write the DOT source to `dot_path`, then render `target` in `fmt` when it is set.

    A missing `dot` program leaves the source written and `dot_missing` set; `dot`
    failing on the source is a WorkError.
    """
    import graphviz

    for path in (dot_path, target):  # before anything is written
        if path is not None and path.is_dir():
            raise FileError(Problem((), f"cannot write {path}: it is a folder",
                                    "give a file path, or remove the folder"))
    write_user_file(dot_path, graph.source.encode("utf-8"))
    if target is None:
        return Written(dot_path, None, False)
    try:
        data = graph.pipe(format=fmt, renderer="cairo" if fmt == "png" else None,
                          quiet=True)
    except graphviz.ExecutableNotFound:
        return Written(dot_path, None, True)
    except graphviz.CalledProcessError as exc:
        message = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise WorkError(Problem((), f"Graphviz's dot could not render {target}: "
                                + (message[-1] if message else f"exit {exc.returncode}"),
                                f"the source is in {dot_path}")) from None
    write_user_file(target, data)
    return Written(dot_path, target, False)
