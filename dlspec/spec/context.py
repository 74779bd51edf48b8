"""The lexical scope expansion works in: visible names, block parameters, inherited flags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from dlspec.errors import Path
from dlspec.graph import InitChoice, Scope
from dlspec.layers.registry import suggest

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
    # local name → the qualified nodes its entry made (for `share:` and `tie:`)
    made: dict[str, list[str]] = field(default_factory=dict)
    # local name of a split → its parts' qualified nodes (`from: halves` reads them all)
    parts: dict[str, list[str]] = field(default_factory=dict)

    def child(self, local: str, scope: Scope | None, flat: bool = False,
              **changes: Any) -> Context:
        """A nested context whose nodes are named `<prefix><local>.<name>`; a `flat` one
        names them in this scope (same prefix, same names) while still grouping them."""
        scopes = (*self.scopes, scope) if scope else self.scopes
        base: dict[str, Any] = {"parent": self, "scopes": scopes, "blocks": self.blocks,
                                "trainable": self.trainable, "init": self.init,
                                "used_at": self.used_at, "env": self.env}
        if flat:
            base |= {"names": self.names, "counters": self.counters, "made": self.made,
                     "parts": self.parts}
            return Context(prefix=self.prefix, **{**base, **changes})
        return Context(prefix=f"{self.prefix}{local}.", **{**base, **changes})

    def resolve(self, name: str) -> str | None:
        """The qualified node a local name refers to, searching enclosing scopes."""
        context: Context | None = self
        while context is not None:
            if name in context.names:
                return context.names[name]
            context = context.parent
        return None

    def lookup(self, table: str, name: str) -> list[str] | None:
        """`made` or `parts` of a local name, searching enclosing scopes."""
        context: Context | None = self
        while context is not None:
            if name in context.names:
                return getattr(context, table).get(name)
            context = context.parent
        return None

    def visible(self, limit: int | None = None) -> list[str]:
        """Every name `from:` could use here (only the first `limit` when given)."""
        out: list[str] = []
        context: Context | None = self
        while context is not None and (limit is None or len(out) < limit):
            names = context.names if limit is None else islice(context.names, limit - len(out))
            out += names
            context = context.parent
        return out

    def visible_count(self) -> int:
        """How many names `from:` could use here, without listing them."""
        count = 0
        context: Context | None = self
        while context is not None:
            count += len(context.names)
            context = context.parent
        return count

    def listing(self, limit: int = 10) -> str:
        """The visible names for a message: `x, conv1, pool1, ...` (at most `limit`)."""
        shown = self.visible(limit)
        more = ", ..." if self.visible_count() > len(shown) else ""
        return ", ".join(shown) + more


class NameHints:
    """A "did you mean" for a name `from:` or `outputs:` cannot find, within a budget.

    Each suggestion compares the name with every visible one: thousands of misses in a
    network of thousands of layers would take quadratic time, so past the budget the
    hint only lists the first names.
    """

    def __init__(self, budget: int = 100_000):
        self.budget = budget  # names compared, over all suggestions of one expansion

    def suggest(self, name: str, context: Context) -> str | None:
        """`did you mean 'x'?` for a visible name close to `name`, while the budget lasts."""
        count = context.visible_count()
        if count > self.budget:
            return None
        self.budget -= count
        return suggest(name, context.visible())

    def hint(self, name: str, context: Context) -> str | None:
        """A suggestion, or else the names that are visible here."""
        close = self.suggest(name, context)
        if close is None and context.visible_count():
            return f"names here: {context.listing()}"
        return close
