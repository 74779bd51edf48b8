"""Dense and reshaping kinds: linear, flatten, reshape, permute, dropout, drop_path, identity,
embedding."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Annotated, Any

from pydantic import Field, PositiveInt

from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    LayerParams,
    Shape,
    ShapeProblem,
    format_shape,
    infer_field,
    register,
    require_rank,
)

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


@register("linear", family="dense", main="out_features")
class Linear(LayerKind):
    """Fully connected layer over the last axis (`nn.Linear`), for an input of any rank.

    As in PyTorch, the other axes are kept: (197, 768) → (197, 3072) applies the same layer to
    every token of a sequence. A C×H×W map is transformed along W only, which is rarely meant:
    put `flatten` before `linear` to connect every value of the map.
    """

    example = Example({"out_features": 10}, (128,), name="classifier")

    inferred = ("in_features",)

    class Params(LayerParams):
        out_features: PositiveInt
        bias: bool = True
        in_features: PositiveInt | None = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        shape = shapes[0]
        if len(shape) == 0:
            raise ShapeProblem("linear needs at least a 1-D input per sample, but receives "
                               "a scalar per sample", "give the input a shape like [1]")
        features = infer_field(p, "in_features", shape[-1])
        return Call(nn.Linear, features, p.out_features, bias=p.bias).producing(
            (*shape[:-1], p.out_features))

    def describe(self, p: Any) -> str:
        units = f"{p.out_features} unit" + ("s" if p.out_features != 1 else "")
        return units + ("" if p.bias else ", no bias")


class _FlattenParams(LayerParams):
    start_dim: int = 1
    end_dim: int = -1


@register("flatten", family="reshape", main="start_dim")
class Flatten(LayerKind):
    """Flatten axes `start_dim..end_dim` (batch axis is 0), as `nn.Flatten`."""

    example = Example(None, (16, 5, 5))

    accepts = "any"

    Params = _FlattenParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        full = (1, *shapes[0])  # PyTorch's dims count the batch axis
        start, end = (d % len(full) if -len(full) <= d < len(full) else None
                      for d in (p.start_dim, p.end_dim))
        if start is None or end is None or start > end:
            raise ShapeProblem(f"flatten dims {p.start_dim}..{p.end_dim} are out of range "
                               f"for {len(full)}-D tensors (the batch axis is 0)")
        if start == 0:
            raise ShapeProblem("flatten with start_dim 0 would merge the batch axis",
                               "use start_dim 1 (the default)")
        out = (*full[1:start], prod(full[start:end + 1]), *full[end + 1:])
        return Call(nn.Flatten, p.start_dim, p.end_dim).producing(out)

    def describe(self, p: Any) -> str:
        return ""


@register("reshape", family="reshape", main="shape")
class Reshape(LayerKind):
    """Reshape each sample; `shape` excludes the batch axis and may hold one -1."""

    example = Example({"shape": [1, 28, 28]}, (784,), name="to_image")

    accepts = "any"

    class Params(LayerParams):
        shape: list[int] = Field(min_length=1)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        size, target = prod(shapes[0]), list(p.shape)
        if target.count(-1) > 1 or any(d == 0 or d < -1 for d in target):
            raise ShapeProblem(f"reshape target {target} may hold positive sizes and one -1")
        known = prod(d for d in target if d != -1)
        if -1 in target:
            if size % known:
                raise ShapeProblem(f"cannot reshape {format_shape(shapes[0])} ({size} values) "
                                   f"to {target}: {size} is not divisible by {known}")
            target[target.index(-1)] = size // known
        elif known != size:
            raise ShapeProblem(f"cannot reshape {format_shape(shapes[0])} ({size} values) to "
                               f"{format_shape(tuple(target))} ({known} values)")
        return Call(modules.Reshape, tuple(target)).producing(target)

    def describe(self, p: Any) -> str:
        return "→ " + format_shape(tuple(p.shape))


@register("permute", family="reshape", main="dims")
class Permute(LayerKind):
    """Reorder axes; `dims` counts the batch axis as 0, which must stay first."""

    example = Example({"dims": [0, 2, 1]}, (16, 50), name="channels_last")

    accepts = "any"

    class Params(LayerParams):
        dims: list[int] = Field(min_length=2)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        rank = len(shapes[0]) + 1
        if sorted(p.dims) != list(range(rank)):
            raise ShapeProblem(f"permute dims {p.dims} must be an ordering of 0..{rank - 1} "
                               f"for input {format_shape(shapes[0])} (batch axis is 0)")
        if p.dims[0] != 0:
            raise ShapeProblem("permute must keep the batch axis (0) first")
        full = (1, *shapes[0])
        return Call(modules.Permute, tuple(p.dims)).producing(
            tuple(full[d] for d in p.dims[1:]))


@register("dropout", family="regularization", main="p")
class Dropout(LayerKind):
    """Element-wise dropout (`nn.Dropout`)."""

    example = Example({"p": 0.3}, (128,), name="drop")

    preserves_shape = True

    class Params(LayerParams):
        p: Probability = 0.5

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        return Call(nn.Dropout, p.p)


@register("drop_path", family="regularization", main="p")
class DropPath(LayerKind):
    """Stochastic depth: in training, each sample's whole input is zeroed with probability `p`
    and the rest scaled by 1 / (1 - p); in evaluation and export the identity.

    Put at the end of a residual branch, it skips the branch for that sample, as timm's
    DropPath and torchvision's StochasticDepth (mode "row") do; the deeper blocks of a network
    usually get the larger `p`.
    """

    example = Example({"p": 0.1}, (16, 8, 8), name="drop_path")

    preserves_shape = True

    class Params(LayerParams):
        p: Annotated[float, Field(ge=0.0, lt=1.0, description="the probability of dropping "
                                  "a sample (below 1: 1 would drop the branch always)")]

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        return Call(modules.DropPath, p.p)


@register("identity", family="reshape")
class Identity(LayerKind):
    """Passes its input through unchanged (a named tap point)."""

    example = Example(None, (64,), name="features")

    preserves_shape = True

    accepts = "any"

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        return Call(nn.Identity)


@register("embedding", family="embedding", main="embedding_dim")
class Embedding(LayerKind):
    """Token ids (int64) to vectors: (seq,) → (seq, embedding_dim)."""

    example = Example({"num_embeddings": 1000, "embedding_dim": 32}, (20,), name="embed",
                      dtype="int64")

    accepts = "int"

    class Params(LayerParams):
        num_embeddings: PositiveInt
        embedding_dim: PositiveInt
        padding_idx: int | None = None
        max_norm: float | None = None
        scale_grad_by_freq: bool = False

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        require_rank(shapes[0], (0, 1, 2), "embedding")
        if p.padding_idx is not None and not -p.num_embeddings <= p.padding_idx < p.num_embeddings:
            raise ShapeProblem(f"padding_idx {p.padding_idx} is outside the vocabulary of "
                               f"{p.num_embeddings} tokens")
        kwargs: dict[str, Any] = {}
        if p.padding_idx is not None:
            kwargs["padding_idx"] = p.padding_idx
        if p.max_norm is not None:
            kwargs["max_norm"] = p.max_norm
        if p.scale_grad_by_freq:
            kwargs["scale_grad_by_freq"] = True
        return Call(nn.Embedding, p.num_embeddings, p.embedding_dim, **kwargs).producing(
            (*shapes[0], p.embedding_dim))

    def describe(self, p: Any) -> str:
        return f"{p.num_embeddings} tokens → {p.embedding_dim}"
