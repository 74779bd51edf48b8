"""The lexical scope expansion works in: visible names, block parameters, inherited flags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlspec.errors import Path
from dlspec.graph import InitChoice, Scope

Outputs = str | list[str]  # a layer's result: one node, or several (parallel without merge)
BROKEN = "<broken>"  # stands for the output of a layer that failed to expand


@dataclass
class Context:
    """Lexical scope for names, block parameters and inherited flags."""

    prefix: str  # qualified-name prefix of nodes made here: "stage1.0."
    env: Mapping[str, Any]  # block parameter values
    parent: Context | None = None
    names: dict[str, str] = field(default_factory=dict)  # local name → qualified node
    later: dict[str, Path] = field(default_factory=dict)  # names defined below, for errors
    counters: Counter[str] = field(default_factory=Counter)
    scopes: tuple[Scope, ...] = ()
    blocks: tuple[str, ...] = ()  # blocks being expanded, to catch recursion
    trainable: bool = True
    init: InitChoice | None = None
    used_at: Path | None = None

    def child(self, local: str, scope: Scope | None, **changes: Any) -> Context:
        """A nested context whose nodes are named `<prefix><local>.<name>`."""
        scopes = (*self.scopes, scope) if scope else self.scopes
        base = {"parent": self, "scopes": scopes, "blocks": self.blocks,
                "trainable": self.trainable, "init": self.init, "used_at": self.used_at,
                "env": self.env}
        return Context(prefix=f"{self.prefix}{local}.", **{**base, **changes})

    def resolve(self, name: str) -> str | None:
        """The qualified node a local name refers to, searching enclosing scopes."""
        context: Context | None = self
        while context is not None:
            if name in context.names:
                return context.names[name]
            context = context.parent
        return None

    def visible(self) -> list[str]:
        """Every name `from:` could use here."""
        out: list[str] = []
        context: Context | None = self
        while context is not None:
            out += list(context.names)
            context = context.parent
        return out
