"""The closed table of layer kinds: a spec's kind name is looked up here, never imported.

A layer kind is one small class registered with `@register`:

    @register("linear", family="dense", main="out_features")
    class Linear(LayerKind):
        example = Example({"out_features": 10}, (128,), name="classifier")

        class Params(LayerParams):
            out_features: PositiveInt
            bias: bool = True
            in_features: int | None = None        # inferred; checked if given

        def build(self, p, shapes):
            (features,) = require_rank(shapes[0], 1, self.name, hint="add `flatten` before it")
            infer_field(p, "in_features", features)
            return Call(nn.Linear, features, p.out_features, bias=p.bias)

`build` receives the validated params and the shapes (batch axis excluded) of
its inputs, raises `ShapeProblem` for input it cannot take, and returns a `Call`
— a constructor call that compile.py executes and `dlspec code` prints. Kind
files import torch only inside `build`, so validation stays torch-free.

`example` is the kind's one use in a network: docs/spec-reference.md shows it with
its output shape and PyTorch call, and the layer, export and reference tests build
and run it, so a new kind is covered without a new test (and fails one without it).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

Shape = tuple[int, ...]


# No size, count or factor of a layer comes near this (an input axis may not exceed it
# either): larger numbers are typos or attacks, and would overflow or hang PyTorch later.
MAX_PARAM_MAGNITUDE = 1 << 31
# Stacked layers are built one Python object each, before their size could be checked.
MAX_STACKED_LAYERS = 1000
StackDepth = Annotated[int, Field(ge=1, le=MAX_STACKED_LAYERS)]


class LayerParams(BaseModel):
    """Base of every kind's parameters: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        if _largest(value) > MAX_PARAM_MAGNITUDE:
            raise ValueError(f"{info.field_name} {_shown(value)} is larger than any layer "
                             f"can use (at most 2**31 = {MAX_PARAM_MAGNITUDE:,})")
        return value


def _largest(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return abs(value)
    if isinstance(value, list | tuple):
        return max((_largest(v) for v in value), default=0)
    return 0


def _shown(value: Any) -> str:
    text = repr(value)  # values here are bounded ints and floats: short enough, but be sure
    return text if len(text) <= 60 else text[:57] + "..."


class NoParams(LayerParams):
    """Kinds without parameters (relu, flatten ...) still reject unknown keys."""


class ShapeProblem(Exception):
    """Raised by `LayerKind.build` when its input shapes cannot be accepted."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Call:
    """A call `target(*args, **kwargs)` that can be run and also printed as Python source.

    `output` is the per-sample output shape when the kind knows it (it has computed the
    geometry anyway): shape inference then need not run the module on the meta device,
    whose first use costs about a second of torch start-up.
    """

    target: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    output: Shape | None = None

    def __init__(self, target: Callable[..., Any], *args: Any, **kwargs: Any):
        self.target, self.args, self.kwargs, self.output = target, args, kwargs, None

    def producing(self, shape: Sequence[int]) -> Call:
        """Declare the output shape (batch axis excluded); returns the call itself."""
        self.output = tuple(shape)
        return self

    def instantiate(self) -> Any:
        """Run the call (nested Calls first)."""
        args = [_instantiate(a) for a in self.args]
        kwargs = {k: _instantiate(v) for k, v in self.kwargs.items()}
        return self.target(*args, **kwargs)

    def source(self) -> str:
        """The call as Python source, e.g. `nn.Linear(84, 10, bias=True)`."""
        parts = [_source(a) for a in self.args]
        parts += [f"{k}={_source(v)}" for k, v in self.kwargs.items()]
        return f"{target_name(self.target)}({', '.join(parts)})"

    def custom_classes(self) -> list[type]:
        """dlspec's own module classes this call (or a nested one) constructs."""
        found: list[type] = []
        if _is_custom(self.target):  # with the dlspec bases it builds on, bases first
            found = [c for c in reversed(type.mro(self.target)) if _is_custom(c)]  # type: ignore[arg-type]
        for value in [*self.args, *self.kwargs.values()]:
            if isinstance(value, Call):
                found += value.custom_classes()
        return found


@dataclass
class Function:
    """A stateless operation compiled to fx `call_function` nodes (merges, element-wise math).

    Without `pack_inputs` or `fold` it is called once as `target(*inputs, **kwargs)`.
    """

    target: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    pack_inputs: bool = False  # torch.cat takes its inputs as one list
    fold: bool = False  # torch.add(a, b) is applied pairwise over 3+ inputs
    output: Shape | None = None  # the output shape, as for Call
    # per input, how many size-1 axes to insert after its batch axis first: per-sample shapes
    # of lower rank broadcast against the others, not against the batch axis
    lift: tuple[int, ...] = ()


def _instantiate(value: Any) -> Any:
    return value.instantiate() if isinstance(value, Call) else value


def _source(value: Any) -> str:
    if isinstance(value, Call):
        return value.source()
    if isinstance(value, list):
        return "[" + ", ".join(_source(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_source(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _is_custom(target: Any) -> bool:
    return inspect.isclass(target) and target.__module__ == "dlspec.layers.modules"


def target_name(target: Any) -> str:
    """How generated code names a class or function: nn.Conv2d, torch.cat, Reshape."""
    module = getattr(target, "__module__", "") or ""
    if module == "torch.nn.functional":  # as fx prints it in forward()
        return f"torch.nn.functional.{target.__name__}"
    if module.startswith("torch.nn"):
        return f"nn.{target.__qualname__}"
    if module.startswith("torch") or getattr(target, "__self__", None) is not None:
        return f"torch.{target.__name__}"
    return str(target.__qualname__)


@dataclass(frozen=True)
class Example:
    """A kind's example: one network entry and the input(s) it reads.

    `args` is what the entry writes after the kind: a mapping of parameters, a scalar
    for the kind's main argument, or None for the bare kind. `inputs` is the input's
    per-sample shape, or a mapping of input names to shapes for a kind that reads
    several (the entry then names them with `from:`). `name` names the entry; `dtype`
    is the inputs' (int64 for token ids).

    Example:
        Example({"out_channels": 16, "kernel_size": 3}, (3, 32, 32), name="conv1")
    """

    args: Any = None
    inputs: Shape | Mapping[str, Shape] = (64,)
    name: str | None = None
    dtype: str = "float32"

    def named_inputs(self) -> list[tuple[str, Shape]]:
        """The inputs as (name, shape) pairs; a single unnamed input is called `x`."""
        if isinstance(self.inputs, Mapping):
            return [(name, tuple(shape)) for name, shape in self.inputs.items()]
        return [("x", tuple(self.inputs))]

    def params(self, main: str | None) -> dict[str, Any]:
        """The args as a parameter mapping (a scalar sets the kind's `main` argument)."""
        if self.args is None:
            return {}
        if isinstance(self.args, Mapping):
            return dict(self.args)
        if main is None:
            raise ValueError(f"a scalar example argument {self.args!r} needs a main argument")
        return {main: self.args}


class LayerKind:
    """One kind of layer. Subclasses set `Params` and `example`, and implement `build`."""

    name: ClassVar[str]
    family: ClassVar[str]
    main: ClassVar[str | None] = None
    Params: ClassVar[type[LayerParams]] = NoParams
    #: how many inputs the kind reads: an int, (min, max), or (min, None) for "min or more"
    arity: ClassVar[int | tuple[int, int | None]] = 1
    #: hidden kinds are made by expansion (shortcut projections), never written by users
    hidden: ClassVar[bool] = False
    #: the input-size fields inferred from shapes, for the schema's documentation
    inferred: ClassVar[tuple[str, ...]] = ()
    #: the dtype family the kind reads: "float" (most), "int" (token ids) or "any"
    accepts: ClassVar[str] = "float"
    #: output shape and dtype equal the input's (norms, activations): shape inference need not
    #: run the module (other kinds declare their output with `Call.producing`)
    preserves_shape: ClassVar[bool] = False
    #: the kind's example for the reference and the tests; every visible kind needs its own
    example: ClassVar[Example | None] = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call | Function | None:
        """Return how to construct the module for inputs of `shapes` (None: pass through)."""
        raise NotImplementedError

    def input_dtypes(self, p: Any, count: int) -> list[str]:
        """The dtype family each of `count` inputs must have: "float", "int" or "any"."""
        return [self.accepts] * count

    def describe(self, p: Any) -> str:
        """A short summary of the defining hyperparameters, for tables and diagrams."""
        values = p.model_dump(exclude_defaults=True, by_alias=True)
        return ", ".join(f"{k}={v}" for k, v in values.items())

    def describe_shapes(self, p: Any, inputs: Sequence[Shape], output: Shape) -> str:
        """`describe`, where the shapes are known (summaries, shaped diagrams); a kind whose
        account depends on them overrides it (the shortcut projection says its rank)."""
        return self.describe(p)


def takes_defaults(kind: LayerKind) -> bool:
    """Whether the kind may be written bare: its defaults alone are valid (every field of
    clamp is optional, but it needs one bound)."""
    try:
        kind.Params.model_validate({})
    except ValidationError:
        return False
    return True


_REGISTRY: dict[str, type[LayerKind]] = {}


def register(name: str, *, family: str, main: str | None = None,
             ) -> Callable[[type[LayerKind]], type[LayerKind]]:
    """Class decorator adding a kind to the registry under `name`."""

    def add(cls: type[LayerKind]) -> type[LayerKind]:
        if name in _REGISTRY:
            raise RuntimeError(f"layer kind {name!r} is registered twice "
                               f"({_REGISTRY[name].__qualname__} and {cls.__qualname__})")
        if main is not None and main not in cls.Params.model_fields and not any(
                f.alias == main for f in cls.Params.model_fields.values()):
            raise RuntimeError(f"{cls.__qualname__}: main argument {main!r} is not a field")
        cls.name, cls.family, cls.main = name, family, main
        if "example" not in vars(cls):  # an inherited example shows another kind
            cls.example = None
        _REGISTRY[name] = cls
        return cls

    return add


def _ensure_loaded() -> None:
    import dlspec.layers  # noqa: F401  (importing the package registers every family)


def lookup_kind(name: str) -> LayerKind | None:
    """The kind registered as `name`, or None."""
    _ensure_loaded()
    cls = _REGISTRY.get(name)
    return cls() if cls is not None else None


def kind_names(include_hidden: bool = False) -> list[str]:
    """Every registered kind name, sorted."""
    _ensure_loaded()
    return sorted(n for n, c in _REGISTRY.items() if include_hidden or not c.hidden)


def suggest(name: str, candidates: Sequence[str]) -> str | None:
    """`did you mean 'x'?` for the closest candidate (or two, when both are as close)."""
    close = difflib.get_close_matches(name, list(candidates), n=2, cutoff=0.6)
    if len(close) == 2 and _similarity(name, close[1]) < _similarity(name, close[0]) - 0.1:
        close = close[:1]
    if not close and len(name) >= 3:
        close = [c for c in candidates if c.startswith(name) or name.startswith(c)][:1]
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


# --- helpers for kinds -----------------------------------------------------------------

def format_shape(shape: Shape) -> str:
    """`(6, 28, 28)` as `6×28×28`; a scalar per sample as `scalar`."""
    return "×".join(str(d) for d in shape) if shape else "scalar"


def require_rank(shape: Shape, rank: int | tuple[int, ...], kind: str,
                 hint: str | None = None) -> Shape:
    """Check the per-sample rank of an input; return the shape for unpacking."""
    ranks = (rank,) if isinstance(rank, int) else rank
    if len(shape) not in ranks:
        wanted = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeProblem(
            f"{kind} expects a {wanted} input per sample, but receives {format_shape(shape)} "
            f"({len(shape)}-D)", hint)
    return shape


def infer_field(p: Any, field_name: str, actual: int) -> int:
    """Return the inferred input size; a value the spec gave must agree with it."""
    given = getattr(p, field_name, None)
    if given is not None and given != actual:
        raise ShapeProblem(
            f"{field_name} is {given} but the incoming tensor gives {actual}",
            f"remove {field_name}: dlspec infers it")
    return actual


def as_tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    """Expand `3` to `(3, 3)` for an n-D kernel; pass sequences through."""
    return (value,) * n if isinstance(value, int) else tuple(value)
