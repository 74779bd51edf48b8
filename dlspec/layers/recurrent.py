"""Recurrent kinds: rnn, lstm, gru over batch-first (seq, features) sequences.

`return: last` (the default) gives the last layer's final hidden state, (hidden_size
× directions); `return: sequence` gives every step's output, (seq, hidden_size ×
directions); `return: state` gives the whole final state, (num_layers × directions,
hidden_size), an LSTM's h and c stacked as (2, num_layers × directions, hidden_size).
A second input (`from: [x, encoder]`) is the initial state in that same layout, so an
encoder's `return: state` starts a decoder of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, PositiveInt, model_validator

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


class _RecurrentParams(LayerParams):
    model_config = ConfigDict(**LayerParams.model_config, populate_by_name=True)

    hidden_size: PositiveInt
    num_layers: StackDepth = 1
    bias: bool = True
    #: dropout between stacked layers (PyTorch applies none after the last one)
    dropout: Probability = 0.0
    bidirectional: bool = False
    return_: Literal["last", "sequence", "state"] = Field("last", alias="return")
    input_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _dropout_needs_layers(self) -> Any:
        if self.dropout > 0 and self.num_layers == 1:
            raise ValueError("dropout acts between stacked layers, so with num_layers 1 it "
                             "does nothing; set num_layers ≥ 2 or add a `dropout` layer after")
        return self


class _Recurrent(LayerKind):
    """Shared build for rnn, lstm and gru."""

    module_name: ClassVar[str]
    inferred = ("input_size",)
    Params = _RecurrentParams
    arity = (1, 2)

    def build(self, p: Any, shapes: Sequence[Shape]) -> Call:
        from dlspec.layers import modules

        if len(shapes) > 2:
            raise ShapeProblem(f"{self.name} reads its sequence and, optionally, an initial "
                               f"state; it receives {len(shapes)} inputs")
        (_, features) = require_rank(
            shapes[0], 2, self.name,
            hint=f"{self.name} reads a (seq, features) sequence per sample; add `embedding` "
                 "before it for token ids, or `reshape: [-1, 1]` for a sequence of scalars")
        size = infer_field(p, "input_size", features)
        state = self.state_shape(p)
        if len(shapes) == 2 and tuple(shapes[1]) != state:
            raise ShapeProblem(
                f"its initial state (second input) is {format_shape(shapes[1])}, but the "
                f"state of this {self.name} is {format_shape(state)}"
                + (" (h and c stacked, × layers·directions × hidden)" if self.name == "lstm"
                   else " (layers·directions × hidden)"),
                f"produce it with `return: state` from a {self.name} of the same hidden_size, "
                "num_layers and bidirectional")
        kwargs: dict[str, Any] = {}
        if p.num_layers != 1:
            kwargs["num_layers"] = p.num_layers
        if getattr(p, "nonlinearity", "tanh") != "tanh":
            kwargs["nonlinearity"] = p.nonlinearity
        if not p.bias:
            kwargs["bias"] = False
        kwargs["batch_first"] = True
        if p.dropout:
            kwargs["dropout"] = p.dropout
        if p.bidirectional:
            kwargs["bidirectional"] = True
        kwargs["return_sequence"] = p.return_ == "sequence"
        if p.return_ == "state":
            kwargs["return_state"] = True
        return Call(getattr(modules, self.module_name), size, p.hidden_size, **kwargs)

    def state_shape(self, p: Any) -> Shape:
        """The per-sample shape of this layer's whole state (`return: state`)."""
        state = (p.num_layers * (2 if p.bidirectional else 1), p.hidden_size)
        return (2, *state) if self.name == "lstm" else state

    def describe(self, p: Any) -> str:
        parts = [f"{p.hidden_size} units"]
        if p.num_layers != 1:
            parts.append(f"{p.num_layers} layers")
        if p.bidirectional:
            parts.append("bidirectional")
        parts.append({"sequence": "sequence", "state": "final state"}.get(p.return_,
                                                                           "last state"))
        return ", ".join(parts)


@register("rnn", family="recurrent", main="hidden_size")
class RNN(_Recurrent):
    """Elman RNN (`nn.RNN`, batch-first) with a tanh or relu non-linearity."""

    example = Example({"hidden_size": 32, "nonlinearity": "relu"}, (20, 8), name="rnn")

    module_name = "RNN"

    class Params(_RecurrentParams):
        nonlinearity: Literal["tanh", "relu"] = "tanh"


@register("lstm", family="recurrent", main="hidden_size")
class LSTM(_Recurrent):
    """Long short-term memory (`nn.LSTM`, batch-first)."""

    example = Example({"hidden_size": 64, "num_layers": 2, "bidirectional": True}, (20, 16),
                      name="encoder")

    module_name = "LSTM"


@register("gru", family="recurrent", main="hidden_size")
class GRU(_Recurrent):
    """Gated recurrent unit (`nn.GRU`, batch-first)."""

    example = Example({"hidden_size": 32, "return": "sequence"}, (20, 8), name="gru")

    module_name = "GRU"
