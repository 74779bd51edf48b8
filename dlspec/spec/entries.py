"""One layer entry's surface syntax, read into an `Entry`.

An entry is a bare kind (`relu`), a kind with its arguments (`linear: 10`,
`conv2d: {...}`), and optional keys beside the kind — `name`, `from`, `repeat`,
`trainable`, `init` — which a pydantic model (`CommonKeys`) validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from dlspec.errors import Path, Problem
from dlspec.layers.registry import suggest
from dlspec.spec import expr
from dlspec.spec.model import Name, Strict
from dlspec.spec.validation import problems_from_validation

MAX_REPEAT = 10_000
InitScheme = Literal["default", "kaiming_normal", "kaiming_uniform", "xavier_normal",
                     "xavier_uniform", "orthogonal", "normal", "uniform", "trunc_normal",
                     "zeros", "ones"]
INIT_CHOICES: tuple[str, ...] = InitScheme.__args__  # type: ignore[attr-defined]


class InitSpec(Strict):
    """Separate schemes for weights and biases."""

    weight: InitScheme | None = None
    bias: InitScheme | None = None


class CommonKeys(Strict):
    """The keys any layer entry may carry beside its kind."""

    name: Name | None = Field(
        None, description="the layer's name: state_dict keys, errors and summaries use it")
    from_: Name | Annotated[list[Name], Field(min_length=1)] | None = Field(
        None, alias="from", description="the layer(s) or input(s) it reads; default: the "
        "layer above")
    repeat: Annotated[int, Field(ge=1, le=MAX_REPEAT)] | None = Field(
        None, description="stack this many copies, named NAME.0, NAME.1, ...")
    trainable: bool | None = Field(None, description="false freezes its parameters")
    init: InitScheme | InitSpec | None = Field(
        None, description="weight initialisation scheme, or {weight, bias}")

    def sources(self) -> list[str] | None:
        """The names in `from:`, as a list (None when the layer reads the one above)."""
        return [self.from_] if isinstance(self.from_, str) else self.from_


COMMON_KEYS = tuple(f.alias or name for name, f in CommonKeys.model_fields.items())


@dataclass(frozen=True)
class Entry:
    """A parsed layer entry: its kind, the kind's raw arguments, and the common keys."""

    kind: str
    args: Any
    common: CommonKeys


def parse_entry(raw: Any, path: Path, env: Mapping[str, Any]) -> tuple[Entry | None,
                                                                       list[Problem]]:
    """Read one entry; return it, or None with the problems that stopped it."""
    if isinstance(raw, str):
        raw = {raw: None}
    if not isinstance(raw, dict):
        return None, [Problem(path, "a layer is a kind name (relu) or a mapping (linear: 10), "
                              f"not {describe(raw)}")]
    kinds = [k for k in raw if k not in COMMON_KEYS]
    if len(kinds) != 1:
        return None, [_kind_count_problem(kinds, path)]
    problems: list[Problem] = []
    common_raw = {k: v for k, v in raw.items() if k in COMMON_KEYS}
    common_raw = expr.substitute(common_raw, env,
                                 lambda sub, msg: problems.append(Problem((*path, *sub), msg)))
    if problems:
        return None, problems
    try:
        common = CommonKeys.model_validate(common_raw)
    except ValidationError as exc:
        found = problems_from_validation(exc, common_raw, CommonKeys)
        return None, [_prefixed(problem, path) for problem in found]
    return Entry(kinds[0], raw[kinds[0]], common), []


def _kind_count_problem(kinds: list[str], path: Path) -> Problem:
    if not kinds:
        return Problem(path, "this layer has no kind", "add one, e.g. `linear: 10`")
    for key in kinds:
        hint = suggest(key, COMMON_KEYS)
        if hint:  # `form: x` beside `relu` is a misspelt `from`, not a second kind
            return Problem((*path, key), f"unknown key {key!r} beside the layer kind", hint,
                           on_key=True)
    listed = ", ".join(repr(k) for k in kinds)
    return Problem(path, f"a layer has exactly one kind, but this one has {len(kinds)}: "
                   f"{listed}", "split it into one entry per layer")


def _prefixed(problem: Problem, path: Path) -> Problem:
    problem.path = (*path, *problem.path)
    return problem


def describe(value: Any) -> str:
    """A short description of a value for messages: `a mapping`, `int 3`, `nothing`."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
