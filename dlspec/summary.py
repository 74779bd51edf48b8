"""`dlspec summary`: a table of layers, kinds, output shapes and parameter counts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dlspec.graph import ShapedGraph
from dlspec.layers.registry import lookup_kind


def summary_table(shaped: ShapedGraph, title: str | None = None) -> Table:
    """A rich Table: one row per layer that holds a module, totals in the caption."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("layer", no_wrap=True)
    table.add_column("kind")
    table.add_column("details")
    table.add_column("output", no_wrap=True)
    table.add_column("parameters", justify="right")
    for name, tensor in shaped.tensors.items():
        if name in shaped.graph.inputs:
            table.add_row(name, "input", tensor.dtype, str(tensor), "")
    for node, info in shaped:
        if info.build is None:
            continue  # a pass-through (identity shortcut) adds nothing
        kind = lookup_kind(node.kind)
        inputs = [shaped.tensors[name].shape for name in node.inputs]
        details = kind.describe_shapes(node.params, inputs, info.output.shape) if kind else ""
        if node.shares is not None:
            details += f"{', ' if details else ''}weights of {node.shares}"
        if node.tie is not None:
            details += f"{', ' if details else ''}weight tied to {node.tie}"
        frozen = " (frozen)" if not node.trainable and info.params else ""
        table.add_row(node.name, node.kind, details, str(info.output),
                      f"{info.params:,}{frozen}" if info.params else "")
    outputs = ", ".join(f"{k} → {v}" for k, v in shaped.outputs().items())
    table.caption = (f"total parameters {shaped.total_params:,} · trainable "
                     f"{shaped.trainable_params:,} · ≈{_macs(shaped.total_macs)} MACs per "
                     f"sample · outputs: {outputs}")
    table.caption_justify = "left"
    return table


def render_summary(shaped: ShapedGraph, title: str | None = None) -> None:
    """Print the summary table to standard output."""
    Console(width=140).print(summary_table(shaped, title))


def _macs(count: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return str(count)
