"""Architecture diagrams drawn from the resolved graph, through Graphviz.

    spec ─▶ Graph / ShapedGraph ─layout─▶ Diagram (clusters, nodes, edges; repeats folded)
         ─collapse (--depth)─▶ Diagram ─render─▶ graphviz.Digraph ─▶ NAME.dot + NAME.svg/png/pdf

`draw` is the entry point; `command` is the `dlspec diagram` sub-command.

Example:
    >>> import dlspec.diagram
    >>> result = dlspec.diagram.draw("specs/resnet18.yaml", "resnet18.svg")
    >>> result.rendered
    PosixPath('resnet18.svg')
"""

from dlspec.diagram.drawing import (
    FORMATS,
    DiagramOptions,
    DiagramResult,
    dot_source,
    draw,
    make_diagram,
)

__all__ = ["FORMATS", "DiagramOptions", "DiagramResult", "dot_source", "draw", "make_diagram"]
