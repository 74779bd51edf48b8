"""Every registered layer kind: its example checks as a spec; its example and further cases
validate, build, run forward/backward on CPU and on meta tensors, and the printed source
rebuilds the same state_dict. Plus targeted checks of the shape problems and the
recurrent/attention specifics."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import yaml
from pydantic import ValidationError
from torch.utils.flop_counter import FlopCounterMode

import dlspec
import dlspec.layers.modules
from dlspec.graph import apply_function
from dlspec.layers.registry import (
    Call,
    Example,
    Function,
    ShapeProblem,
    kind_names,
    lookup_kind,
)

# (params, input shapes per sample[, input dtype]): one build of a kind
Case = tuple[dict[str, Any], list[tuple[int, ...]]] | tuple[
    dict[str, Any], list[tuple[int, ...]], torch.dtype]

# Cases beyond each kind's own `example` (declared on its class, and run first below):
# parameters and input ranks the examples leave out. A new kind needs none here.
MORE_CASES: dict[str, list[Case]] = {
    # dense / reshape
    "linear": [({"out_features": 2, "bias": False}, [(5, 4)])],
    "reshape": [({"shape": [3, -1]}, [(12,)])],
    # activations: the defaults, where the example sets a parameter
    **{name: [({}, [(5,)])] for name in ("leaky_relu", "elu", "celu", "gelu", "softplus",
                                         "prelu")},
    # merge
    "add": [({}, [(3,), (3,), (3,)]),
            ({}, [(2, 3), (1,), (2, 1)])],  # broadcasting; a lower rank gains axes
    "clamp": [({"min": -0.5}, [(5,)])],
    "concat": [({"dim": -1}, [(2, 3), (2, 1)])],
    # convolution
    "conv2d": [({"out_channels": 4, "kernel_size": [3, 1], "stride": 2, "padding": [1, 0],
                 "groups": 2, "bias": False, "padding_mode": "reflect"}, [(2, 6, 5)]),
               ({"out_channels": 2, "kernel_size": 2, "dilation": 2, "padding": "valid"},
                [(1, 4, 4)])],
    "conv_transpose2d": [({"out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1,
                           "output_padding": 1}, [(3, 2, 2)])],
    "upsample": [({"scale_factor": 2}, [(2, 3)]),
                 ({"size": [4, 6], "mode": "bilinear", "align_corners": False}, [(1, 2, 3)]),
                 ({"scale_factor": [1.5, 2.0, 2.0], "mode": "trilinear"}, [(1, 2, 2, 2)])],
    # pooling
    "maxpool2d": [({"kernel_size": 3, "ceil_mode": True}, [(1, 2, 2)])],
    "maxpool3d": [({"kernel_size": 2, "dilation": 2}, [(1, 3, 3, 3)])],
    "avgpool1d": [({"kernel_size": 3, "padding": 1, "count_include_pad": False}, [(2, 4)])],
    "adaptive_avgpool2d": [({"output_size": [None, 2]}, [(2, 3, 5)])],
    # normalization
    "batchnorm1d": [({"momentum": None, "affine": False}, [(3, 4)])],
    "layernorm": [({"normalized_shape": [4, 6], "bias": False}, [(4, 6)])],
    "instancenorm3d": [({"track_running_stats": True}, [(2, 2, 2, 2)])],
    # recurrent
    "lstm": [({"hidden_size": 3, "num_layers": 2, "dropout": 0.1, "bidirectional": True},
              [(5, 2)]),
             ({"hidden_size": 3, "return": "sequence"}, [(5, 2)])],
    "gru": [({"hidden_size": 3, "bias": False}, [(5, 2)])],
    # attention
    "multihead_attention": [({"num_heads": 2, "add_bias_kv": True}, [(3, 4), (6, 5), (6, 2)])],
    "transformer_encoder": [({"num_layers": 2, "nhead": 2, "dim_feedforward": 8,
                              "norm_first": True, "norm": True}, [(5, 4)])],
    "transformer_decoder": [({"num_layers": 1, "nhead": 2, "dim_feedforward": 8,
                              "activation": "gelu"}, [(3, 4), (5, 4)])],
    "positional_encoding": [({}, [(5, 4)]),
                            ({"type": "learned", "max_len": 8, "dropout": 0.1}, [(5, 3)])],
}


def _example_case(name: str) -> list[Case]:
    """The kind's own example as a case (none: test_every_kind_has_an_example fails)."""
    kind = lookup_kind(name)
    assert kind is not None
    if kind.example is None:
        return []
    shapes = [shape for _, shape in kind.example.named_inputs()]
    return [(kind.example.params(kind.main), shapes, getattr(torch, kind.example.dtype))]


# kind name -> its cases, its example first; test_export builds the same cases
EXAMPLES: dict[str, list[Case]] = {
    name: _example_case(name) + MORE_CASES.get(name, []) for name in kind_names()}

CASES = [pytest.param(name, *ex[:2], ex[2] if len(ex) > 2 else None, id=f"{name}-{i}")
         for name, examples in EXAMPLES.items() for i, ex in enumerate(examples)]

NAMESPACE = {"nn": torch.nn, "torch": torch,
             **{c.__name__: c for c in vars(dlspec.layers.modules).values()
                if isinstance(c, type)}}


@pytest.mark.parametrize("name", kind_names())
def test_every_kind_has_an_example(name: str) -> None:
    kind = lookup_kind(name)
    assert kind is not None
    example = kind.example
    assert isinstance(example, Example), (
        f"{type(kind).__qualname__} ({name}) has no example: give its class "
        f"`example = Example(...)`; the reference shows it and the tests build it")
    kind.Params.model_validate(example.params(kind.main))
    # written as a spec, the example checks, and its one layer is of this kind
    inputs = {n: {"shape": list(s), "dtype": example.dtype} for n, s in example.named_inputs()}
    entry = {name: example.args, "from": list(inputs) if len(inputs) > 1 else next(iter(inputs))}
    if example.name is not None:
        entry["name"] = example.name
    spec = dlspec.loads(yaml.safe_dump({"dlspec": 1, "name": "example", "inputs": inputs,
                                        "network": [entry]}, sort_keys=False))
    (shaped,) = dlspec.shapes(spec).values()
    assert [node.kind for node in shaped.graph.nodes] == [name]


def test_more_cases_name_registered_kinds() -> None:
    stale = sorted(set(MORE_CASES) - set(kind_names()))
    assert not stale, f"MORE_CASES names kinds that are not registered: {stale}"


def _inputs(kind: Any, shapes: list[tuple[int, ...]], dtype: torch.dtype | None,
            batch: int = 2, device: str = "cpu") -> list[torch.Tensor]:
    if dtype is None:
        dtype = torch.int64 if kind.accepts == "int" else torch.float32
    if dtype.is_floating_point:
        return [torch.randn(batch, *s, dtype=dtype, device=device) for s in shapes]
    return [torch.randint(0, 4, (batch, *s), dtype=dtype, device=device) for s in shapes]


def _build(name: str, params: dict[str, Any], shapes: list[tuple[int, ...]]) -> Any:
    kind = lookup_kind(name)
    assert kind is not None
    arity = kind.arity
    if isinstance(arity, int):
        assert len(shapes) == arity
    else:
        assert len(shapes) >= arity[0]
    p = kind.Params.model_validate(params)
    assert isinstance(kind.describe(p), str)
    return kind, p, kind.build(p, shapes)


@pytest.mark.parametrize(("name", "params", "shapes", "dtype"), CASES)
def test_kind_builds_runs_and_prints(name: str, params: dict[str, Any],
                                     shapes: list[tuple[int, ...]],
                                     dtype: torch.dtype | None) -> None:
    torch.manual_seed(0)
    kind, p, built = _build(name, params, shapes)
    inputs = _inputs(kind, shapes, dtype)
    if isinstance(built, Function):
        out = apply_function(built, inputs)
        assert out.shape[0] == 2
        if built.output is not None:
            assert built.output == tuple(out.shape[1:])
        return
    assert isinstance(built, Call)
    module = built.instantiate()
    out = module(*inputs)
    assert isinstance(out, torch.Tensor) and out.shape[0] == 2

    params_list = [q for q in module.parameters() if q.requires_grad]
    if params_list:
        out.float().sum().backward()
        assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in params_list)

    # shape inference (graph.py) builds the module on the meta device and runs it in eval
    # mode on a batch of one, counting FLOPs: it must work there too
    with torch.device("meta"):
        meta_module = built.instantiate().eval()
    with FlopCounterMode(display=False):
        meta_out = meta_module(*_inputs(kind, shapes, dtype, batch=1, device="meta"))
    assert meta_out.shape[1:] == out.shape[1:]
    # a declared output shape (which spares shape inference the meta run) must be exact
    if built.output is not None:
        assert built.output == tuple(out.shape[1:])

    # `dlspec code` prints the call; evaluated it rebuilds the same state_dict
    src = built.source()
    rebuilt = eval(src, NAMESPACE)
    assert type(rebuilt) is type(module)
    expected = {k: v.shape for k, v in module.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == expected


# --- shape problems ---------------------------------------------------------------------

def _problem(name: str, params: dict[str, Any], shapes: list[tuple[int, ...]]) -> ShapeProblem:
    kind = lookup_kind(name)
    assert kind is not None
    with pytest.raises(ShapeProblem) as caught:
        kind.build(kind.Params.model_validate(params), shapes)
    return caught.value


def test_kernel_larger_than_input() -> None:
    problem = _problem("conv2d", {"out_channels": 16, "kernel_size": 7}, [(6, 5, 5)])
    assert problem.message == "kernel_size 7 is larger than the 5×5 input"
    assert problem.hint


def test_kernel_larger_than_padded_input() -> None:
    problem = _problem("conv2d", {"out_channels": 4, "kernel_size": 7, "padding": 1},
                       [(1, 4, 4)])
    assert problem.message == "kernel_size 7 is larger than the 4×4 input (padded to 6×6)"
    problem = _problem("conv1d", {"out_channels": 4, "kernel_size": 3, "dilation": 3},
                       [(1, 6)])
    assert "spanning 7 with dilation 3" in problem.message


def test_pool_kernel_larger_than_input() -> None:
    problem = _problem("maxpool2d", {"kernel_size": 3}, [(6, 2, 2)])
    assert problem.message == "kernel_size 3 is larger than the 2×2 input"
    problem = _problem("avgpool1d", {"kernel_size": 4, "padding": 1}, [(6, 1)])
    assert problem.message == "kernel_size 4 is larger than the 1 input (padded to 3)"


def test_pool_padding_at_most_half_the_kernel() -> None:
    with pytest.raises(ValidationError, match="padding 2 is more than half of kernel_size 3"):
        lookup_kind("maxpool2d").Params.model_validate({"kernel_size": 3, "padding": 2})


def test_groupnorm_divisibility() -> None:
    problem = _problem("groupnorm", {"num_groups": 3}, [(16, 4, 4)])
    assert problem.message.startswith("num_groups 3 does not divide 16 channels")
    assert "1, 2, 4, 8, 16" in (problem.hint or "")


def test_attention_divisibility() -> None:
    problem = _problem("multihead_attention", {"num_heads": 3}, [(5, 16)])
    assert problem.message.startswith("embed_dim 16 is not divisible by num_heads 3")
    problem = _problem("transformer_encoder", {"num_layers": 1, "nhead": 3}, [(5, 16)])
    assert problem.message.startswith("d_model 16 is not divisible by nhead 3")


def test_attention_input_count() -> None:
    problem = _problem("multihead_attention", {"num_heads": 2}, [(5, 4), (5, 4)])
    assert "1 input (self-attention) or 3" in problem.message


def test_decoder_memory_width() -> None:
    problem = _problem("transformer_decoder", {"num_layers": 1, "nhead": 2}, [(3, 4), (5, 6)])
    assert problem.message.startswith("transformer_decoder's memory has 6 features")


def test_given_input_size_must_agree() -> None:
    problem = _problem("conv2d", {"out_channels": 4, "kernel_size": 3, "in_channels": 3},
                       [(1, 8, 8)])
    assert problem.message == "in_channels is 3 but the incoming tensor gives 1"
    problem = _problem("lstm", {"hidden_size": 4, "input_size": 7}, [(5, 2)])
    assert problem.message == "input_size is 7 but the incoming tensor gives 2"


def test_conv2d_on_a_flat_input() -> None:
    problem = _problem("conv2d", {"out_channels": 4, "kernel_size": 3}, [(784,)])
    assert problem.message == ("conv2d expects a 3-D input per sample, but receives 784 (1-D)")
    assert "reshape" in (problem.hint or "")


def test_groups_must_divide_channels() -> None:
    problem = _problem("conv2d", {"out_channels": 4, "kernel_size": 1, "groups": 2},
                       [(3, 4, 4)])
    assert problem.message == "groups 2 does not divide the 3 input channels"


def test_transposed_output_too_small() -> None:
    problem = _problem("conv_transpose2d", {"out_channels": 2, "kernel_size": 3, "padding": 3},
                       [(1, 2, 2)])
    assert "padding 3 is too large for the 2×2 input" in problem.message


def test_layernorm_shape_must_be_trailing() -> None:
    problem = _problem("layernorm", {"normalized_shape": [4, 8]}, [(8, 4)])
    assert problem.message == "normalized_shape 4×8 does not match the last axes of the " \
                              "8×4 input"


def test_instancenorm_needs_spatial_extent() -> None:
    problem = _problem("instancenorm2d", {}, [(3, 1, 1)])
    assert "more than one spatial element" in problem.message


def test_upsample_mode_rank() -> None:
    problem = _problem("upsample", {"scale_factor": 2, "mode": "bilinear"}, [(3, 8)])
    assert problem.message.startswith("upsample in mode 'bilinear' expects a 3-D input")


@pytest.mark.parametrize(("name", "params", "words"), [
    ("upsample", {}, "exactly one of scale_factor and size"),
    ("upsample", {"scale_factor": 2, "size": 4}, "exactly one of scale_factor and size"),
    ("upsample", {"scale_factor": 2, "align_corners": True}, "align_corners"),
    ("conv2d", {"out_channels": 4, "kernel_size": 3, "padding": "same", "stride": 2},
     "padding 'same' needs stride 1"),
    ("conv2d", {"out_channels": 4, "kernel_size": [3, 3, 3]}, "kernel_size has 3 values"),
    ("conv2d", {"out_channels": 4, "kernel_size": "3"}, "kernel_size"),
    ("conv_transpose2d", {"out_channels": 4, "kernel_size": 3, "output_padding": 1},
     "output_padding 1 must be smaller than stride 1"),
    ("lstm", {"hidden_size": 4, "dropout": 0.2}, "num_layers 1"),
    ("rnn", {"hidden_size": 4, "nonlinearity": "sigmoid"}, "nonlinearity"),
    ("lstm", {"hidden_size": 4, "return": "first"}, "return"),
    ("gru", {"hidden_size": 4, "retrun": "last"}, "retrun"),
])
def test_invalid_params(name: str, params: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        lookup_kind(name).Params.model_validate(params)


# --- recurrent --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_return_last_and_sequence(name: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    dirs = 2 if bidirectional else 1
    x = torch.randn(2, 5, 3)
    last = _build(name, {"hidden_size": 4, "num_layers": 2, "bidirectional": bidirectional},
                  [(5, 3)])[2].instantiate()
    seq = _build(name, {"hidden_size": 4, "num_layers": 2, "bidirectional": bidirectional,
                        "return": "sequence"}, [(5, 3)])[2].instantiate()
    seq.load_state_dict(last.state_dict())
    out_last, out_seq = last(x), seq(x)
    assert out_last.shape == (2, 4 * dirs)
    assert out_seq.shape == (2, 5, 4 * dirs)
    # the last state is the forward direction's final step and the backward one's first
    torch.testing.assert_close(out_last[:, :4], out_seq[:, -1, :4])
    if bidirectional:
        torch.testing.assert_close(out_last[:, 4:], out_seq[:, 0, 4:])
    # state_dict keys are PyTorch's own
    assert "weight_ih_l1" in last.state_dict()


def test_return_alias() -> None:
    params = lookup_kind("lstm").Params
    yaml_like = params.model_validate({"hidden_size": 8, "return": "sequence"})
    assert yaml_like.return_ == "sequence"
    assert params.model_validate({"hidden_size": 8}).return_ == "last"
    assert yaml_like.model_dump(by_alias=True)["return"] == "sequence"
    assert lookup_kind("lstm").describe(yaml_like) == "8 units, sequence"


def test_recurrent_needs_a_sequence() -> None:
    problem = _problem("gru", {"hidden_size": 4}, [(5,)])
    assert problem.message.startswith("gru expects a 2-D input per sample")
    assert "reshape: [-1, 1]" in (problem.hint or "")


# --- attention --------------------------------------------------------------------------

def test_positional_encoding_max_len() -> None:
    problem = _problem("positional_encoding", {"max_len": 8}, [(12, 4)])
    assert "12 positions, more than max_len 8" in problem.message
    assert problem.hint == "raise max_len to at least 12"


def test_positional_encoding_state() -> None:
    _, _, sinusoidal = _build("positional_encoding", {"max_len": 16}, [(5, 5)])
    module = sinusoidal.instantiate()
    assert dict(module.state_dict()) == {}  # the fixed table is not saved
    x = torch.zeros(1, 5, 5)
    table = module(x)[0]
    torch.testing.assert_close(table[:, 0], torch.sin(torch.arange(5.0)))
    torch.testing.assert_close(table[:, 1], torch.cos(torch.arange(5.0)))
    _, _, learned = _build("positional_encoding", {"type": "learned", "max_len": 16}, [(5, 4)])
    assert {k: v.shape for k, v in learned.instantiate().state_dict().items()} == {
        "weight": (1, 16, 4)}


def test_cross_attention_dims() -> None:
    _, _, built = _build("multihead_attention", {"num_heads": 2}, [(3, 4), (6, 5), (6, 5)])
    assert built.kwargs["kdim"] == 5 and built.kwargs["vdim"] == 5
    out = built.instantiate()(torch.randn(2, 3, 4), torch.randn(2, 6, 5), torch.randn(2, 6, 5))
    assert out.shape == (2, 3, 4)


def test_printed_sources() -> None:
    assert _build("conv2d", {"out_channels": 6, "kernel_size": 5}, [(1, 32, 32)])[2].source() \
        == "nn.Conv2d(1, 6, kernel_size=5)"
    assert _build("lstm", {"hidden_size": 8}, [(5, 3)])[2].source() \
        == "LSTM(3, 8, batch_first=True, return_sequence=False)"
    assert _build("transformer_encoder", {"num_layers": 2, "nhead": 2, "norm": True},
                  [(5, 4)])[2].source() == (
        "nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, batch_first=True), "
        "num_layers=2, enable_nested_tensor=False, norm=nn.LayerNorm(4))")
    assert _build("maxpool2d", {"kernel_size": 2, "stride": 2}, [(1, 4, 4)])[2].source() \
        == "nn.MaxPool2d(2)"


def test_describe() -> None:
    conv = lookup_kind("conv2d")
    p = conv.Params.model_validate({"out_channels": 6, "kernel_size": 5, "stride": 2})
    assert conv.describe(p) == "5×5, 6 ch, stride 2"
    up = lookup_kind("upsample")
    assert up.describe(up.Params.model_validate({"scale_factor": 2})) == "×2 nearest"
    pool = lookup_kind("adaptive_avgpool2d")
    assert pool.describe(pool.Params.model_validate({"output_size": 1})) == "→ 1×1"
