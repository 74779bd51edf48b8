"""How boxes look: colours by layer family, and the HTML-like labels Graphviz draws.

Labels are Graphviz's HTML-like labels (`<...>`): a bold name, the kind with its
hyperparameters, and a small grey line with the output shape and parameter count. All
text goes through `escape`, so no layer name or value can break the DOT source.
"""

from __future__ import annotations

import re
from html import escape as _html_escape

from dlspec.diagram.model import Cluster, DiagramNode
from dlspec.runtime.untrusted import printable as _escape_hidden

FONT = "Helvetica"
FONT_SIZE = 10
SMALL = 8.5
GREY = "#555555"
SKIP_COLOUR = "#7b52ab"
FROZEN_COLOUR = "#1f6fb2"

# family → (fill, border). Pastel fills keep black text readable; borders a shade darker.
FAMILY_COLOURS: dict[str, tuple[str, str]] = {
    "convolution": ("#cfe2f3", "#5b8db8"),
    "pooling": ("#d9ead3", "#6aa150"),
    "normalization": ("#fff2cc", "#c9a227"),
    "activation": ("#fde6d2", "#d08a4c"),
    "recurrent": ("#f4d6e4", "#b35c85"),
    "attention": ("#e1d9f0", "#8068b0"),
    "dense": ("#f6d1d1", "#c0504d"),
    "merge": ("#e8e8e8", "#7f7f7f"),
    "embedding": ("#d2ecec", "#3f9a9a"),
    "reshape": ("#f5f5f5", "#a6a6a6"),
    "regularization": ("#fafafa", "#b3b3b3"),
    "resample": ("#dcefe6", "#4f9a78"),
    "group": ("#eeeeee", "#6f6f6f"),
    "input": ("#36454f", "#36454f"),
    "output": ("#36454f", "#36454f"),
}
DEFAULT_COLOURS = ("#ffffff", "#888888")

FAMILY_NAMES = {"convolution": "convolution", "pooling": "pooling",
                "normalization": "normalisation", "activation": "activation",
                "recurrent": "recurrent", "attention": "attention", "dense": "dense",
                "merge": "merge", "embedding": "embedding", "reshape": "reshape",
                "regularization": "dropout", "resample": "resampling",
                "group": "collapsed group"}

# cluster kind → (border colour, fill, border style)
CLUSTER_STYLES: dict[str, tuple[str, str, str]] = {
    "network": ("#36454f", "#ffffff", "rounded,bold"),
    "block": ("#8c8c8c", "#f7f7f7", "rounded"),
    "residual": (SKIP_COLOUR, "#f8f5fc", "rounded"),
    "parallel": ("#4f9a78", "#f3f9f6", "rounded"),
    "sequential": ("#a6a6a6", "#fbfbfb", "rounded,dashed"),
    "repeat": ("#b45f06", "#fdf6ee", "rounded,bold"),
}

# shape-preserving kinds without weights are drawn as one small line
COMPACT_FAMILIES = frozenset({"activation", "regularization"})
WRAP = 40  # characters per line of a block call
LEFT = '<BR ALIGN="LEFT"/>'  # ends a line of a left-aligned label


def escape(text: str) -> str:
    """Text made safe inside an HTML-like label."""
    return _html_escape(printable(text), quote=True)


def printable(text: str) -> str:
    """`text` on one line, every control or invisible character shown as its escape (`\\x1b`).

    A spec's description or a block's string parameter reaches the drawing; Graphviz
    refuses control characters in a label, and bidi overrides would reorder it.
    """
    if text.isprintable():
        return text
    return _escape_hidden(text.replace("\n", " ").replace("\t", " "))


def dot_string(text: str) -> str:
    """`text` for a quoted DOT attribute (a tooltip): printable, backslashes and quotes escaped.

    In a DOT string a backslash escapes the next character: one at the end would escape
    the closing quote, a syntax error that stops `dot` (and the graphviz package warns,
    showing its own source path). Quotes are escaped here too, so nothing is left for the
    package to guess.
    """
    return printable(text).replace("\\", "\\\\").replace('"', '\\"')


def colours(family: str) -> tuple[str, str]:
    """(fill, border) of a family's boxes."""
    return FAMILY_COLOURS.get(family, DEFAULT_COLOURS)


def is_auto_name(name: str, kind: str) -> bool:
    """Whether `name` is one dlspec made up (`relu_3`, `add`), so the kind says it all."""
    return name == kind or re.fullmatch(rf"{re.escape(kind)}_\d+", name) is not None


def is_compact(node: DiagramNode) -> bool:
    """A weightless, shape-keeping layer with a made-up name: one small line is enough."""
    return (node.role == "layer" and node.family in COMPACT_FAMILIES and not node.params
            and is_auto_name(node.name, node.kind))


def count(params: int) -> str:
    """`61706` as `61,706 params`."""
    return f"{params:,} param" + ("s" if params != 1 else "")


def node_label(node: DiagramNode) -> str:
    """The HTML-like label of a node (without the enclosing `<` `>`)."""
    if node.role in ("input", "output"):
        return _terminal_label(node)
    if node.role == "group":
        return _group_label(node)
    kind_line = escape(kind_text(node.kind, node.details))
    if is_compact(node):
        return kind_line
    if not is_auto_name(node.name, node.kind):
        kind_line = f"<B>{escape(node.name)}</B>  {kind_line}"
    stats = _stats(node.shape, node.params, node.frozen)
    return "<BR/>".join([kind_line] + ([stats] if stats else []))


def kind_text(kind: str, details: str) -> str:
    """`conv2d 5×5, 6 ch`; just the details when they name the kind (`1×1 projection`)."""
    if kind in details:
        return details
    return f"{kind} {details}" if details else kind


def _terminal_label(node: DiagramNode) -> str:
    lines = [f"<B>{escape(node.name)}</B>"]
    detail = " · ".join(p for p in (node.shape, node.details) if p)
    if detail:
        lines.append(f'<FONT POINT-SIZE="{SMALL}">{escape(detail)}</FONT>')
    return "<BR/>".join(lines)


def _group_label(node: DiagramNode) -> str:
    title = f"<B>{escape(node.name)}</B>"
    if node.copies is not None:
        title += f" <B>×{node.copies}</B>"
    lines = [title, *[escape(line) for line in wrap(node.details or node.kind)]]
    stats = _stats(node.shape, node.params, node.frozen)
    return "<BR/>".join(lines + ([stats] if stats else []))


def _stats(shape: str | None, params: int | None, frozen: bool) -> str:
    """The small grey line: output shape · parameters (frozen)."""
    parts = [shape] if shape else []
    if params:
        parts.append(count(params))
    text = escape(" · ".join(parts))
    if frozen:
        text += (" · " if text else "") + f'<FONT COLOR="{FROZEN_COLOUR}"><B>frozen</B></FONT>'
    return f'<FONT POINT-SIZE="{SMALL}" COLOR="{GREY}">{text}</FONT>' if text else ""


def cluster_label(cluster: Cluster) -> str:
    """The HTML-like label of a cluster: name, block call or structure, ×N, parameters."""
    title = f"<B>{escape(cluster.name)}</B>"
    if cluster.copies is not None:
        title += f' <FONT COLOR="{CLUSTER_STYLES["repeat"][0]}"><B>×{cluster.copies}</B></FONT>'
    description = cluster.label if cluster.kind in ("block", "repeat") else cluster.kind
    if cluster.kind == "network" or (cluster.kind == "sequential" and cluster.label):
        description = ""  # a parallel branch: its key is its name
    stats = _cluster_stats(cluster)
    lines = [title + (f"  {stats}" if stats else "")]
    if description and not is_auto_name(cluster.name, description):
        lines += [escape(line) for line in wrap(description)]
    return "".join(line + LEFT for line in lines)


def _cluster_stats(cluster: Cluster) -> str:
    if cluster.params is None and not cluster.frozen:
        return ""
    parts = []
    if cluster.params:
        every = f", all {cluster.copies}" if cluster.folded and (cluster.copies or 0) > 1 else ""
        parts.append(escape(count(cluster.params) + every))
    if cluster.frozen:
        parts.append(f'<FONT COLOR="{FROZEN_COLOUR}"><B>frozen</B></FONT>')
    text = " · ".join(parts)
    return f'<FONT POINT-SIZE="{SMALL}" COLOR="{GREY}">{text}</FONT>' if text else ""


def wrap(text: str, width: int = WRAP) -> list[str]:
    """Break a block call after its commas so no line is much longer than `width`."""
    lines: list[str] = []
    current = ""
    for piece in re.split(r"(?<=, )", text):
        if current and len(current) + len(piece) > width:
            lines.append(current.rstrip())
            current = "    " if "(" in lines[0] else ""
        current += piece
    lines.append(current.rstrip())
    return lines


def title_label(title: str, description: str, params: int | None,
                trainable: int | None) -> str:
    """The diagram's heading: spec name, description and parameter totals."""
    lines = [f'<FONT POINT-SIZE="14"><B>{escape(title)}</B></FONT>']
    if description:
        lines += [escape(line) for line in wrap(description, 90)]
    if params is not None:
        stats = f"{params:,} parameters" if params else "no parameters"
        if trainable is not None and trainable != params:
            stats += f" ({trainable:,} trainable)"
        lines.append(f'<FONT COLOR="{GREY}">{escape(stats)}</FONT>')
    return "<BR/>".join(lines)
