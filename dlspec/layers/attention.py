"""Attention kinds: multihead attention, transformer encoder/decoder stacks and
positional encoding, over batch-first (seq, d_model) sequences.

Masks: `causal: true` lets each position attend only to itself and earlier positions;
`pad_id: N` blocks the keys whose token id is N, read from an int token input listed last
in `from:` (`from: [embedded, tokens]`). Both are built from the runtime length
(dlspec.layers.modules.AttentionMasks), so they follow a dynamic sequence axis in ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from dlspec.layers.registry import (
    Call,
    Example,
    LayerKind,
    LayerParams,
    Shape,
    ShapeProblem,
    StackDepth,
    format_shape,
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


def _ids_last(kind: str, p: Any, shapes: Sequence[Shape]) -> None:
    """With pad_id, token ids (one axis) listed before the sequence they mark is a swap."""
    if p.pad_id is not None and len(shapes[0]) == 1 and len(shapes[-1]) == 2:
        raise ShapeProblem(
            f"{kind}'s first input is {format_shape(shapes[0])} token ids, and its last a "
            f"{format_shape(shapes[-1])} sequence: pad_id reads the token ids last",
            "list the sequence first and its token ids last, e.g. from: [embedded, tokens]")


def _declared(p: Any, call: Call, output: Shape) -> Call:
    """The output declared, so that shape inference need not run the layer (which imports
    torch._dynamo); with pad_id it runs, and the module checks the ids' dtype."""
    return call if p.pad_id is not None else call.producing(output)


def _dtypes(p: Any, count: int, sequences: int) -> list[str]:
    """Float sequences. Inputs beyond them, and all with pad_id, are left to `build`, which
    can say more: token ids listed first are swapped, ids without pad_id need it."""
    if p.pad_id is not None:
        return ["any"] * count
    return ["float"] * min(sequences, count) + ["any"] * max(0, count - sequences)


def _pad_ids(shapes: Sequence[Shape], sequences: Sequence[tuple[str, Shape]],
             kind: str, pad_id: int) -> None:
    """Check the token-id inputs of `pad_id` against the sequences whose keys they mark:
    `shapes` are the ids' shapes, `sequences` (role, shape) of what each one marks."""
    for ids, (role, sequence) in zip(shapes, sequences, strict=True):
        if len(ids) != 1:
            raise ShapeProblem(
                f"{kind}'s pad ids (for pad_id {pad_id}) should be token ids, one per position "
                f"of the {role}, but that input is {format_shape(ids)}",
                "give the int64 token ids the embedding read, listed last, e.g. "
                "from: [embedded, tokens]")
        if ids[0] != sequence[0]:
            raise ShapeProblem(
                f"{kind}'s pad ids have {ids[0]} positions but its {role} has {sequence[0]}",
                f"give the token ids of the {role} itself (the input its embedding read)")


def _mask_kwargs(p: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if p.causal:
        kwargs["causal"] = True
    if p.pad_id is not None:
        kwargs["pad_id"] = p.pad_id
    return kwargs


def _describe_masks(p: Any) -> str:
    masks = (["causal"] if p.causal else []) + (
        [f"pad {p.pad_id}"] if p.pad_id is not None else [])
    return "".join(f", {m}" for m in masks)


_CAUSAL = "mask later positions: each position attends only to itself and earlier ones"
_PAD_ID = ("mask the keys whose token id is this: the int token ids are read as the last "
           "input in `from:`, e.g. from: [embedded, tokens]")


@register("multihead_attention", family="attention", main="num_heads")
class MultiheadAttention(LayerKind):
    """Multi-head attention: self-attention on one input, cross-attention on
    `from: [query, key, value]`. Outputs (seq_query, embed_dim); no weights. With `pad_id`,
    the keys' token ids follow: `from: [x, tokens]` or `[query, key, value, key_tokens]`."""

    example = Example({"num_heads": 4}, (10, 64), name="attention")

    arity = (1, None)
    inferred = ("embed_dim",)
    accepts = "any"  # the pad ids are int; the module refuses int features (AttentionMasks)

    def input_dtypes(self, p: Any, count: int) -> list[str]:
        return _dtypes(p, count, sequences=count if count in (1, 3) else 0)

    class Params(LayerParams):
        num_heads: PositiveInt
        dropout: Probability = 0.0
        bias: bool = True
        add_bias_kv: bool = False
        add_zero_attn: bool = False
        causal: bool = Field(False, description=_CAUSAL)
        pad_id: NonNegativeInt | None = Field(None, description=_PAD_ID)
        embed_dim: PositiveInt | None = None

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        ids = 1 if p.pad_id is not None else 0
        if len(shapes) - ids not in (1, 3):
            raise ShapeProblem(
                f"multihead_attention reads 1 input (self-attention) or 3 (query, key, "
                f"value){' and then the pad ids' if ids else ''}, but receives {len(shapes)}",
                "to attend over one memory, list it twice: from: [query, memory, memory]"
                if ids or len(shapes) != 2 else "to mask padding, add pad_id and list the "
                "token ids last: from: [x, tokens]")
        _ids_last(self.name, p, shapes)
        features = shapes[:len(shapes) - ids]
        names: tuple[str, ...] = ("query", "key", "value") if len(features) == 3 else ("input",)
        seqs = [_sequence(s, self.name, n) for s, n in zip(features, names, strict=True)]
        keys = (names[1], seqs[1]) if len(seqs) == 3 else (names[0], seqs[0])
        if ids:
            _pad_ids(shapes[-1:], [keys], self.name, p.pad_id)
        if p.causal and seqs[0][0] != keys[1][0]:
            raise ShapeProblem(
                f"causal attention needs as many query positions as key positions, but the "
                f"query has {seqs[0][0]} and the key {keys[1][0]}",
                "causal masks self-attention; leave it out for cross-attention")
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
        if p.causal or p.pad_id is not None:
            return _declared(p, Call(modules.MaskedMultiheadAttention, embed, p.num_heads,
                                     **kwargs, **_mask_kwargs(p)), seqs[0])
        return _declared(p, Call(modules.MultiheadAttention, embed, p.num_heads, **kwargs),
                         seqs[0])

    def describe(self, p: Any) -> str:
        return f"{p.num_heads} heads" + _describe_masks(p)


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
    causal: bool = Field(False, description=_CAUSAL)
    pad_id: NonNegativeInt | None = Field(None, description=_PAD_ID)
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

    kwargs: dict[str, Any] = {"num_layers": p.num_layers, **extra, **_mask_kwargs(p)}
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
    return f"{layers}, {p.nhead} heads, ff {p.dim_feedforward}" + _describe_masks(p)


def _count(kind: str, p: Any, shapes: Sequence[Shape], roles: tuple[str, ...]) -> None:
    """A stack reads its sequences (`roles`), then with pad_id the token ids of the first
    one (and, for a decoder, optionally the memory's)."""
    listed = "[" + ", ".join(roles) + "]"
    if p.pad_id is None:
        if len(shapes) != len(roles):
            raise ShapeProblem(
                f"{kind} reads {len(roles)} input{'s' if len(roles) > 1 else ''} ({listed}), "
                f"but receives {len(shapes)}",
                "to mask padding, add pad_id and list the token ids last, e.g. from: "
                f"[{', '.join(roles)}, tokens]" if len(shapes) > len(roles) else
                f"list them in from: {listed}")
        return
    most = len(roles) + len(roles)  # the ids of each sequence, in the same order
    if not len(roles) < len(shapes) <= most:
        ids = ("[" + ", ".join((*roles, f"{roles[0]}_ids", f"{roles[1]}_ids")) + "]"
               if len(roles) > 1 else f"[{roles[0]}, tokens]")
        raise ShapeProblem(
            f"{kind} with pad_id {p.pad_id} reads {listed} and then the token ids that mark "
            f"the padding, but receives {len(shapes)} input{'s' if len(shapes) != 1 else ''}",
            f"list the token ids after the sequence{'s' if len(roles) > 1 else ''}: from: "
            f"{ids}")


@register("transformer_encoder", family="attention", main="num_layers")
class TransformerEncoder(LayerKind):
    """A stack of transformer encoder layers (`nn.TransformerEncoder`) over (seq, d_model);
    with `pad_id` it reads `from: [x, tokens]`, masking the keys whose token is padding."""

    example = Example({"num_layers": 2, "nhead": 4, "dim_feedforward": 128}, (10, 64),
                      name="encoder")

    arity = (1, None)
    inferred = ("d_model",)
    accepts = "any"  # the pad ids are int; the module refuses int features (AttentionMasks)
    Params = _TransformerParams

    def input_dtypes(self, p: Any, count: int) -> list[str]:
        return _dtypes(p, count, sequences=1)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        from dlspec.layers import modules

        _count(self.name, p, shapes, ("input",))
        _ids_last(self.name, p, shapes)
        sequence = _sequence(shapes[0], self.name)
        if p.pad_id is not None:
            _pad_ids(shapes[1:], [("input", sequence)], self.name, p.pad_id)
        d_model = infer_field(p, "d_model", sequence[1])
        _heads(d_model, p.nhead, "d_model", "nhead")
        masked = p.causal or p.pad_id is not None
        stack = _stack(p, modules.MaskedTransformerEncoder if masked else nn.TransformerEncoder,
                       nn.TransformerEncoderLayer, d_model, enable_nested_tensor=False)
        return _declared(p, stack, sequence)

    def describe(self, p: Any) -> str:
        return _describe_stack(p)


@register("transformer_decoder", family="attention", main="num_layers")
class TransformerDecoder(LayerKind):
    """A stack of transformer decoder layers (`nn.TransformerDecoder`); reads
    `from: [target, memory]`, both (seq, d_model). `causal: true` masks the target's
    self-attention (as tgt_mask with tgt_is_causal); with `pad_id` the target's token ids
    follow, then optionally the memory's: `from: [target, memory, target_ids, memory_ids]`."""

    example = Example({"num_layers": 2, "nhead": 4, "dim_feedforward": 128},
                      {"target": (10, 64), "memory": (12, 64)}, name="decoder")

    arity = (2, None)
    inferred = ("d_model",)
    accepts = "any"  # the pad ids are int; the module refuses int features (AttentionMasks)
    Params = _TransformerParams

    def input_dtypes(self, p: Any, count: int) -> list[str]:
        return _dtypes(p, count, sequences=2)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from torch import nn

        from dlspec.layers import modules

        _count(self.name, p, shapes, ("target", "memory"))
        _ids_last(self.name, p, shapes)
        target = _sequence(shapes[0], self.name, "target")
        memory_sequence = _sequence(shapes[1], self.name, "memory")
        if p.pad_id is not None:
            _pad_ids(shapes[2:], [("target", target), ("memory", memory_sequence)][
                :len(shapes) - 2], self.name, p.pad_id)
        features, memory = target[1], memory_sequence[1]
        d_model = infer_field(p, "d_model", features)
        if memory != d_model:
            raise ShapeProblem(
                f"transformer_decoder's memory has {memory} features but its target has "
                f"{d_model} (d_model)",
                f"project the memory with `linear: {d_model}` first")
        _heads(d_model, p.nhead, "d_model", "nhead")
        masked = p.causal or p.pad_id is not None
        stack = _stack(p, modules.MaskedTransformerDecoder if masked else nn.TransformerDecoder,
                       nn.TransformerDecoderLayer, d_model)
        return _declared(p, stack, target)

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
