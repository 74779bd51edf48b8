"""Glob patterns over layer names, as `param_groups`, `transfer.layers` and `freeze` use them.

A pattern selects a parameter when it matches the parameter's name or the name of a module
holding it: `layer4`, `layer4.*` and `*.bias` all work.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from dlspec.layers.registry import suggest


def selects(pattern: str, parameter: str) -> bool:
    """Whether `pattern` matches the parameter's name or the name of a module holding it."""
    parts = parameter.split(".")
    return any(fnmatchcase(".".join(parts[:n]), pattern) for n in range(1, len(parts) + 1))


def pattern_hint(pattern: str, names: list[str]) -> str:
    """A did-you-mean for a pattern that selects nothing, or the layers there are."""
    modules = sorted({".".join(n.split(".")[:k]) for n in names
                      for k in range(1, n.count(".") + 1)})
    depth = pattern.removesuffix(".*").count(".")  # compare like with like: layr4 / layer4
    modules = [m for m in modules if m.count(".") == depth] or modules
    if pattern.endswith(".*"):
        modules = [f"{m}.*" for m in modules]
    if close := suggest(pattern, modules):
        return close
    top = sorted({n.split(".")[0] for n in names})
    shown = ", ".join(top[:8]) + (", ..." if len(top) > 8 else "")
    return f"layers with parameters: {shown}" if top else "the network has no parameters"
