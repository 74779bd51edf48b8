"""`draw`: a spec (or its resolved graphs) → `NAME.dot` and, when Graphviz runs, the picture.

Only the standard library and dlspec.errors are imported up front, so registering the
`diagram` command costs the other commands nothing; shape inference (torch) is imported
only when shapes are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlspec.errors import Problem, SpecError

if TYPE_CHECKING:
    from dlspec.diagram.model import Diagram
    from dlspec.graph import Graph, ShapedGraph
    from dlspec.spec.model import Spec

    Source = Spec | str | Path | Graph | ShapedGraph | Mapping[str, Graph | ShapedGraph]

FORMATS = ("svg", "png", "pdf", "dot")
RANKDIRS = ("TB", "LR")
INSTALL_HINT = ("install Graphviz — Debian/Ubuntu: sudo apt-get install graphviz; Fedora: "
                "sudo dnf install graphviz; macOS: brew install graphviz; conda: conda install "
                "-c conda-forge graphviz; Windows: winget install graphviz — and run again")


@dataclass(frozen=True)
class DiagramOptions:
    """What to draw and how.

    `format` None takes the output file's suffix (svg when it has none). `depth` N draws
    N levels of clusters and collapses the ones below into single boxes (1: every
    top-level block is one box). `expand` draws every copy of a repeat instead of one
    cluster marked ×N. `shapes` False skips shape inference (no torch; no shapes or
    parameter counts).
    """

    format: str | None = None
    rankdir: str = "TB"
    depth: int | None = None
    expand: bool = False
    shapes: bool = True
    edge_shapes: bool = False
    legend: bool = True
    network: str | None = None


@dataclass(frozen=True)
class DiagramResult:
    """The files `draw` wrote; `rendered` is None when only the DOT source could be written."""

    dot: Path
    rendered: Path | None
    format: str
    dot_missing: bool = False  # Graphviz's `dot` program was not found
    boxes: int = 0  # nodes drawn

    @property
    def paths(self) -> list[Path]:
        """Every file written, DOT source first."""
        return [self.dot] + ([self.rendered] if self.rendered else [])

    def note(self) -> str | None:
        """How to get the picture when `dot` was missing, or None."""
        if not self.dot_missing:
            return None
        return (f"Graphviz's `dot` program is not installed, so only {self.dot} was written; "
                f"{INSTALL_HINT} (or render it elsewhere: dot -T{self.format} {self.dot} "
                f"-o {self.dot.with_suffix('.' + self.format)})")


def draw(source: Source, path: str | Path, options: DiagramOptions | None = None,
         ) -> DiagramResult:
    """Draw a network: write `path`'s DOT source beside it, and `path` itself if `dot` runs.

    `source` is a spec file, a loaded Spec, or resolved graphs (`dlspec.graphs(spec)` or
    `dlspec.shapes(spec)`; one graph or a mapping of them). The format comes from
    `options.format` or the suffix of `path`; `architecture.svg` writes `architecture.dot`
    and `architecture.svg`. Never prints: a missing `dot` is `result.dot_missing`, with the
    install advice in `result.note()`.

    Example:
        >>> result = dlspec.diagram.draw("specs/lenet5.yaml", "runs/lenet5/architecture.svg")
        >>> [p.name for p in result.paths]
        ['architecture.dot', 'architecture.svg']
    """
    from dlspec.diagram.render import RenderOptions, to_digraph, write_files

    options = options or DiagramOptions()
    fmt, target = output_paths(Path(path), options.format)
    diagram = make_diagram(source, options)
    graph = to_digraph(diagram, RenderOptions(options.rankdir, options.edge_shapes,
                                              options.legend))
    dot_path = target.with_suffix(".dot")
    written = write_files(graph, dot_path, None if fmt == "dot" else target, fmt)
    return DiagramResult(written.dot, written.rendered, fmt, written.dot_missing,
                         sum(1 for n in diagram.nodes() if n.role in ("layer", "group")))


def dot_source(source: Source, options: DiagramOptions | None = None) -> str:
    """The DOT text `draw` would write (needs the graphviz package, not the `dot` program)."""
    from dlspec.diagram.render import RenderOptions, to_digraph

    options = options or DiagramOptions()
    graph = to_digraph(make_diagram(source, options),
                       RenderOptions(options.rankdir, options.edge_shapes, options.legend))
    return str(graph.source)


def make_diagram(source: Source, options: DiagramOptions | None = None) -> Diagram:
    """The neutral Diagram (clusters, nodes, edges) of `source`, folded and collapsed."""
    from dlspec.diagram.collapse import collapse
    from dlspec.diagram.forks import add_forks
    from dlspec.diagram.layout import build_diagram

    options = options or DiagramOptions()
    _check_options(options)
    networks, title, description = _networks(source, options.shapes)
    if options.network is not None:
        if options.network not in networks:
            from dlspec.layers.registry import suggest

            raise SpecError(Problem((), f"{title} has no network {options.network!r}; it has "
                                    f"{', '.join(networks)}",
                                    suggest(options.network, list(networks))))
        networks = {options.network: networks[options.network]}
    diagram = build_diagram(networks, title, description, expand=options.expand)
    if options.depth is not None:
        diagram = collapse(diagram, options.depth)
    return add_forks(diagram)


def output_paths(path: Path, fmt: str | None) -> tuple[str, Path]:
    """The format and the file to render: from `fmt`, else the suffix (svg without one)."""
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        fmt = suffix if suffix in FORMATS else "svg"
    if fmt not in FORMATS:
        raise SpecError(Problem((), f"unknown diagram format {fmt!r}",
                                f"use one of {', '.join(FORMATS)}"))
    if suffix in FORMATS and suffix != fmt:
        raise SpecError(Problem((), f"{path} does not end in .{fmt}",
                                f"name the file *.{fmt}, or leave out the format"))
    return fmt, path if suffix == fmt else path.with_name(path.name + "." + fmt)


def _check_options(options: DiagramOptions) -> None:
    if options.rankdir not in RANKDIRS:
        raise SpecError(Problem((), f"unknown direction {options.rankdir!r}",
                                "use TB (top to bottom) or LR (left to right)"))
    if options.depth is not None and options.depth < 1:
        raise SpecError(Problem((), f"depth {options.depth} draws nothing",
                                "use 1 (top-level blocks as boxes) or more"))


def _networks(source: Source, shapes: bool,
              ) -> tuple[Mapping[str, Graph | ShapedGraph], str, str]:
    """The graphs to draw, with the diagram's title and description."""
    import dlspec
    from dlspec.graph import Graph, ShapedGraph
    from dlspec.spec.model import Spec

    if isinstance(source, str | Path):
        source = dlspec.load(source)
    if isinstance(source, Spec):
        networks = dlspec.shapes(source) if shapes else dlspec.graphs(source)
        return networks, source.name, source.description or ""
    if isinstance(source, Graph | ShapedGraph):
        source = {_graph_name(source): source}
    first = next(iter(source.values()), None)
    if first is None:
        raise SpecError(Problem((), "there is no network to draw"))
    return source, _graph_name(first) if len(source) == 1 else "networks", ""


def _graph_name(graph: Graph | ShapedGraph) -> str:
    return graph.graph.name if hasattr(graph, "graph") else graph.name
