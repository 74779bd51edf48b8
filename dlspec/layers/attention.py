"""Attention kinds: multihead attention, transformer encoder/decoder stacks and
positional encoding, over batch-first (seq, d_model) sequences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    LayerParams,
    Shape,
    ShapeProblem,
    StackDepth,
    infer_field,
    register,
    require_rank,
)

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def _sequence(shape: Shape, kind: str, what: str = "input") -> Shape:
    return require_rank(
        shape, 2, f"{kind}'s {what}" if what != "input" else kind,
        hint=f"{kind} reads a (seq, d_model) sequence per sample; add `embedding` before it "
             "for token ids, or `reshape`/`permute` to that layout")


def _heads(embed: int, heads: int, embed_name: str, heads_name: str) -> None:
    if embed % heads:
        fits = [h for h in range(1, embed + 1) if embed % h == 0]
        raise ShapeProblem(
            f"{embed_name} {embed} is not divisible by {heads_name} {heads}: each head "
            f"needs an equal share of the features",
            f"choose {heads_name} from the divisors of {embed} ({', '.join(map(str, fits))}), "
            f"or project to another width with `linear` first")


@register("multihead_attention", family="attention", main="num_heads")
class MultiheadAttention(LayerKind):
    """Multi-head attention: self-attention on one input, cross-attention on
    `from: [query, key, value]`. Outputs (seq_query, embed_dim); no weights."""

    example = Example({"num_heads": 4}, (10, 64), name="attention")

    arity = (1, None)
    inferred = ("embed_dim",)

    class Params(LayerParams):
        num_heads: PositiveInt
        dropout: Probability = 0.0
        bias: bool = True
        add_bias_kv: bool = False
        add_zero_attn: bool = False
        embed_dim: PositiveInt | None = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        if len(shapes) not in (1, 3):
            raise ShapeProblem(
                f"multihead_attention reads 1 input (self-attention) or 3 (query, key, "
                f"value), but receives {len(shapes)}",
                "to attend over one memory, list it twice: from: [query, memory, memory]")
        names = ("query", "key", "value") if len(shapes) == 3 else ("input",)
        seqs = [_sequence(s, self.name, n) for s, n in zip(shapes, names, strict=True)]
        embed = infer_field(p, "embed_dim", seqs[0][1])
        _heads(embed, p.num_heads, "embed_dim", "num_heads")
        kwargs: dict[str, Any] = {}
        if p.dropout:
            kwargs["dropout"] = p.dropout
        if not p.bias:
            kwargs["bias"] = False
        if p.add_bias_kv:
            kwargs["add_bias_kv"] = True
        if p.add_zero_attn:
            kwargs["add_zero_attn"] = True
        if len(seqs) == 3:
            key, value = seqs[1], seqs[2]
            if key[0] != value[0]:
                raise ShapeProblem(
                    f"multihead_attention's key has {key[0]} positions but its value has "
                    f"{value[0]}",
                    "key and value must come from sequences of the same length")
            if key[1] != embed or value[1] != embed:
                kwargs["kdim"], kwargs["vdim"] = key[1], value[1]
        kwargs["batch_first"] = True
        return Call(modules.MultiheadAttention, embed, p.num_heads, **kwargs)

    def describe(self, p: Any) -> str:
        return f"{p.num_heads} heads"


class _TransformerParams(LayerParams):
    num_layers: StackDepth
    nhead: PositiveInt
    dim_feedforward: PositiveInt = 2048
    dropout: Probability = 0.1
    activation: Literal["relu", "gelu"] = "relu"
    layer_norm_eps: PositiveFloat = 1e-5
    norm_first: bool = False
    bias: bool = True
    #: a final LayerNorm after the stack (usual with norm_first)
    norm: bool = False
    d_model: PositiveInt | None = None


def _layer_kwargs(p: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if p.dim_feedforward != 2048:
        kwargs["dim_feedforward"] = p.dim_feedforward
    if p.dropout != 0.1:
        kwargs["dropout"] = p.dropout
    if p.activation != "relu":
        kwargs["activation"] = p.activation
    if p.layer_norm_eps != 1e-5:
        kwargs["layer_norm_eps"] = p.layer_norm_eps
    kwargs["batch_first"] = True
    if p.norm_first:
        kwargs["norm_first"] = True
    if not p.bias:
        kwargs["bias"] = False
    return kwargs


def _stack(p: Any, stack: Any, layer: Any, d_model: int, **extra: Any) -> Call:
    from torch import nn

    kwargs: dict[str, Any] = {"num_layers": p.num_layers, **extra}
    if p.norm:
        norm_kwargs: dict[str, Any] = {}
        if p.layer_norm_eps != 1e-5:
            norm_kwargs["eps"] = p.layer_norm_eps
        if not p.bias:
            norm_kwargs["bias"] = False
        kwargs["norm"] = Call(nn.LayerNorm, d_model, **norm_kwargs)
    return Call(stack, Call(layer, d_model, p.nhead, **_layer_kwargs(p)), **kwargs)


def _describe_stack(p: Any) -> str:
    layers = f"{p.num_layers} layer" + ("s" if p.num_layers != 1 else "")
    return f"{layers}, {p.nhead} heads, ff {p.dim_feedforward}"


@register("transformer_encoder", family="attention", main="num_layers")
class TransformerEncoder(LayerKind):
    """A stack of transformer encoder layers (`nn.TransformerEncoder`) over (seq, d_model)."""

    example = Example({"num_layers": 2, "nhead": 4, "dim_feedforward": 128}, (10, 64),
                      name="encoder")

    inferred = ("d_model",)
    Params = _TransformerParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        (_, features) = _sequence(shapes[0], self.name)
        d_model = infer_field(p, "d_model", features)
        _heads(d_model, p.nhead, "d_model", "nhead")
        return _stack(p, nn.TransformerEncoder, nn.TransformerEncoderLayer, d_model,
                      enable_nested_tensor=False)

    def describe(self, p: Any) -> str:
        return _describe_stack(p)


@register("transformer_decoder", family="attention", main="num_layers")
class TransformerDecoder(LayerKind):
    """A stack of transformer decoder layers (`nn.TransformerDecoder`); reads
    `from: [target, memory]`, both (seq, d_model). No causal mask is applied."""

    example = Example({"num_layers": 2, "nhead": 4, "dim_feedforward": 128},
                      {"target": (10, 64), "memory": (12, 64)}, name="decoder")

    arity = 2
    inferred = ("d_model",)
    Params = _TransformerParams

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        (_, features) = _sequence(shapes[0], self.name, "target")
        (_, memory) = _sequence(shapes[1], self.name, "memory")
        d_model = infer_field(p, "d_model", features)
        if memory != d_model:
            raise ShapeProblem(
                f"transformer_decoder's memory has {memory} features but its target has "
                f"{d_model} (d_model)",
                f"project the memory with `linear: {d_model}` first")
        _heads(d_model, p.nhead, "d_model", "nhead")
        return _stack(p, nn.TransformerDecoder, nn.TransformerDecoderLayer, d_model)

    def describe(self, p: Any) -> str:
        return _describe_stack(p)


@register("positional_encoding", family="attention", main="type")
class PositionalEncoding(LayerKind):
    """Adds a sinusoidal (fixed) or learned position encoding to a (seq, d_model) input."""

    example = Example({"type": "learned", "max_len": 128}, (10, 64), name="positions")

    inferred = ("d_model",)

    class Params(LayerParams):
        type: Literal["sinusoidal", "learned"] = "sinusoidal"
        max_len: PositiveInt = 5000
        dropout: Probability = 0.0
        d_model: PositiveInt | None = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        (length, features) = _sequence(shapes[0], self.name)
        d_model = infer_field(p, "d_model", features)
        if length > p.max_len:
            raise ShapeProblem(
                f"positional_encoding's input has {length} positions, more than max_len "
                f"{p.max_len}",
                f"raise max_len to at least {length}")
        kwargs: dict[str, Any] = {}
        if p.max_len != 5000:
            kwargs["max_len"] = p.max_len
        if p.type == "learned":
            kwargs["learned"] = True
        if p.dropout:
            kwargs["dropout"] = p.dropout
        return Call(modules.PositionalEncoding, d_model, **kwargs)

    def describe(self, p: Any) -> str:
        return p.type + ("" if p.max_len == 5000 else f", max_len {p.max_len}")
