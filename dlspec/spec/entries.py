"""One layer entry's surface syntax, read into an `Entry`.

An entry is a bare kind (`relu`), a kind with its arguments (`linear: 10`,
`conv2d: {...}`), and optional keys beside the kind — `name`, `from`, `repeat`, `if`,
`share`, `tie`, `trainable`, `init` — which a pydantic model (`CommonKeys`) validates.
A block parameter may stand for the whole entry (`- $act`) or for its kind (`$act: ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, WithJsonSchema

from dlspec.errors import Path, Problem
from dlspec.layers.registry import suggest
from dlspec.spec import expr
from dlspec.spec.model import NAME_PATTERN, Name, Strict, name_problem
from dlspec.spec.validation import problems_from_validation

MAX_REPEAT = 10_000
MAX_INIT_VALUES = 65_536  # explicit weights are for hand-set networks, not for checkpoints
SOURCE_PATTERN = NAME_PATTERN[:-1] + r"(\.[A-Za-z0-9_]+)?$"
InitScheme = Literal["default", "kaiming_normal", "kaiming_uniform", "xavier_normal",
                     "xavier_uniform", "orthogonal", "normal", "uniform", "trunc_normal",
                     "zeros", "ones"]
INIT_CHOICES: tuple[str, ...] = InitScheme.__args__  # type: ignore[attr-defined]


Values = float | list[Any]  # a number for every element, or nested lists giving each


def _values(value: Any) -> Any:
    """Explicit initial values: a number, or nested lists of numbers of one shape."""
    if isinstance(value, str):
        return value
    count = _count_numbers(value)
    if count > MAX_INIT_VALUES:
        raise ValueError(f"explicit values are for hand-set layers: at most "
                         f"{MAX_INIT_VALUES:,} numbers; load larger weights with `transfer`")
    return value


def _count_numbers(value: Any, depth: int = 0) -> int:
    if isinstance(value, bool) or depth > 8:
        raise ValueError("explicit values are numbers, or nested lists of numbers (at most "
                         "8 levels)")
    if isinstance(value, int | float):
        return 1
    if isinstance(value, list) and value:
        return sum(_count_numbers(v, depth + 1) for v in value)
    raise ValueError(f"explicit values are numbers or nested lists of numbers; found "
                     f"{describe(value)}")


InitValue = Annotated[InitScheme | Values, BeforeValidator(_values), WithJsonSchema({"anyOf": [
    {"enum": list(InitScheme.__args__)},  # type: ignore[attr-defined]
    {"type": "number"}, {"type": "array"}],
    "description": "a scheme, a constant, or explicit values (nested lists)"})]


class InitSpec(Strict):
    """Separate schemes for weights and biases, or their explicit values."""

    weight: InitValue | None = None
    bias: InitValue | None = None


class RepeatSpec(Strict):
    """`repeat: {count: 3, first: {stride: 2}}`: copies, the first with other arguments."""

    count: Annotated[int, Field(ge=0, le=MAX_REPEAT)] = Field(description="how many copies")
    first: dict[str, Any] | None = Field(
        None, description="arguments the first copy uses instead (a stage's first block "
        "has the stride)")


def _source_name(value: Any) -> Any:
    if isinstance(value, str):
        head, dot, part = value.partition(".")
        if (problem := name_problem(head)) or (dot and not part.replace("_", "a").isalnum()):
            raise ValueError(problem or f"{value[:80]!r}: after the dot comes the part's name "
                             "or index (halves.0)")
    return value


SourceName = Annotated[str, BeforeValidator(_source_name),
                       WithJsonSchema({"type": "string", "pattern": SOURCE_PATTERN})]


class CommonKeys(Strict):
    """The keys any layer entry may carry beside its kind."""

    name: Name | None = Field(
        None, description="the layer's name: state_dict keys, errors and summaries use it")
    from_: SourceName | Annotated[list[SourceName], Field(min_length=1)] | None = Field(
        None, alias="from", description="the layer(s) or input(s) it reads (one part of a "
        "split as halves.0); default: the layer above")
    repeat: Annotated[int, Field(ge=0, le=MAX_REPEAT)] | RepeatSpec | None = Field(
        None, description="stack this many copies, named NAME.0, NAME.1, ... (0: none, the "
        "input passes through), or {count, first}")
    if_: bool | None = Field(
        None, alias="if", description="false leaves the layer out (its first input passes "
        "through and its name stands for it); usually an expression: if: $(expand != 1)")
    share: Name | None = Field(
        None, description="use the weights of the layer or block above with this name "
        "(siamese towers): the same modules run at both places, stored once")
    tie: Name | None = Field(
        None, description="a linear layer's weight is this embedding's (or linear's) weight, "
        "stored once (an LM head tied to its input embedding)")
    trainable: bool | None = Field(None, description="false freezes its parameters")
    init: InitScheme | InitSpec | None = Field(
        None, description="weight initialisation scheme, or {weight, bias}: each a scheme, "
        "a constant, or explicit values")

    def sources(self) -> list[str] | None:
        """The names in `from:`, as a list (None when the layer reads the one above)."""
        return [self.from_] if isinstance(self.from_, str) else self.from_

    @property
    def copies(self) -> int | None:
        """How many copies `repeat` asks for (None: the entry is not repeated)."""
        return self.repeat.count if isinstance(self.repeat, RepeatSpec) else self.repeat

    @property
    def first_copy(self) -> dict[str, Any] | None:
        """The arguments the first copy uses instead, if `repeat` gives them."""
        return self.repeat.first if isinstance(self.repeat, RepeatSpec) else None


COMMON_KEYS = tuple(f.alias or name for name, f in CommonKeys.model_fields.items())


@dataclass(frozen=True)
class Entry:
    """A parsed layer entry: its kind, the kind's raw arguments, and the common keys."""

    kind: str
    args: Any
    common: CommonKeys


def parse_entry(raw: Any, path: Path, env: Mapping[str, Any],
                is_kind: Callable[[str], bool] = lambda _: True,
                ) -> tuple[Entry | None, list[Problem]]:
    """Read one entry; return it, or None with the problems that stopped it.

    `is_kind` tells a kind (or block or structure) from a misplaced key, for the message.
    """
    problems: list[Problem] = []
    raw = _substituted_kind(raw, env, lambda sub, msg: problems.append(Problem((*path, *sub),
                                                                               msg)))
    if problems:
        return None, problems
    if isinstance(raw, str):
        raw = {raw: None}
    if not isinstance(raw, dict):
        return None, [Problem(path, "a layer is a kind name (relu) or a mapping (linear: 10), "
                              f"not {describe(raw)}")]
    kinds = [k for k in raw if k not in COMMON_KEYS]
    if len(kinds) != 1:
        return None, [_kind_count_problem(kinds, path, is_kind)]
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


def _substituted_kind(raw: Any, env: Mapping[str, Any],
                      on_error: Callable[[tuple[Any, ...], str], None]) -> Any:
    """`- $act` → the entry the parameter holds; `$act: {...}` → that kind with those
    arguments. A parameter holding a mapping (`{leaky_relu: 0.1}`) is a whole entry."""
    if expr.is_reference(raw):
        return expr.substitute(raw, env, on_error)
    if isinstance(raw, dict) and any(expr.is_reference(k) for k in raw):
        out: dict[Any, Any] = {}
        for key, value in raw.items():
            if not expr.is_reference(key):
                out[key] = value
                continue
            kind = expr.substitute(key, env, _at_key(key, on_error))
            if not isinstance(kind, str):
                on_error((key,), f"{key} stands for a kind here, so it must hold a kind's "
                         f"name, not {describe(kind)}")
                return raw
            out[kind] = value
        return out
    return raw


def _at_key(key: str, on_error: Callable[[tuple[Any, ...], str], None],
            ) -> Callable[[tuple[Any, ...], str], None]:
    """Report an expression error at the mapping key it was written in."""
    return lambda _, message: on_error((key,), message)


def _kind_count_problem(kinds: list[str], path: Path,
                        is_kind: Callable[[str], bool]) -> Problem:
    if not kinds:
        return Problem(path, "this layer has no kind", "add one, e.g. `linear: 10`")
    real = [k for k in kinds if is_kind(k)]
    for key in kinds:
        hint = suggest(key, COMMON_KEYS)
        if hint or (len(real) == 1 and key not in real):
            # `form: x` beside `relu` is a misspelt `from`, not a second kind
            return Problem((*path, key), f"unknown key {key!r} beside the layer kind "
                           f"{real[0]!r}" if len(real) == 1 and key not in real else
                           f"unknown key {key!r} beside the layer kind",
                           hint or f"keys beside a kind: {', '.join(COMMON_KEYS)}",
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
