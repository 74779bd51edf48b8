"""The kinds modern architectures are said with: `parameter` (ViT's class token and position
embedding, ConvNeXt's layer scale), `drop_path` (stochastic depth), the perceptron's `step` and
`sign`, `linear` over the last axis of any rank, `layernorm` with `channels_first` (and no
silent normalisation over W), and pooling dilation in summaries. Each computes what its
hand-written PyTorch counterpart computes, and the idioms compile, print as code and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from pydantic import ValidationError

import dlspec
from dlspec.codegen import generate_code
from dlspec.errors import ShapeError, SpecError
from dlspec.layers import modules
from dlspec.layers.registry import ShapeProblem, lookup_kind


def _spec(entries: list[Any], inputs: dict[str, Any], name: str = "kinds") -> Any:
    return dlspec.loads(yaml.safe_dump({"dlspec": 1, "name": name, "inputs": inputs,
                                        "network": entries}, sort_keys=False))


def _image(shape: list[int], dtype: str = "float32") -> dict[str, Any]:
    return {"x": {"shape": shape, "dtype": dtype}}


def _problem(name: str, params: dict[str, Any], shape: tuple[int, ...]) -> ShapeProblem:
    kind = lookup_kind(name)
    assert kind is not None
    with pytest.raises(ShapeProblem) as caught:
        kind.build(kind.Params.model_validate(params), [shape])
    return caught.value


def _module(name: str, params: dict[str, Any], shape: tuple[int, ...]) -> torch.nn.Module:
    kind = lookup_kind(name)
    assert kind is not None
    module: torch.nn.Module = kind.build(kind.Params.model_validate(params), [shape]).instantiate()
    return module


# --- parameter ------------------------------------------------------------------------------

VIT = [  # a 2×2-patch ViT front: patches → tokens, class token prepended, positions added
    {"conv2d": {"out_channels": 8, "kernel_size": 2, "stride": 2}, "name": "patches"},
    {"flatten": 2},
    {"permute": [0, 2, 1], "name": "tokens"},
    {"parameter": [1, 8], "name": "cls_token"},
    {"concat": 1, "from": ["cls_token", "tokens"], "name": "joined"},
    {"parameter": {"shape": [5, 8], "init": "normal"}, "name": "pos_embed", "from": "joined"},
    {"add": None, "from": ["joined", "pos_embed"], "name": "embedded"},
]


def test_vit_class_token_and_position_embedding() -> None:
    spec = _spec(VIT, _image([3, 4, 4]))
    (shaped,) = dlspec.shapes(spec).values()
    assert shaped.tensors["embedded"].shape == (5, 8)
    assert shaped.info["cls_token"].params == 8 and shaped.info["pos_embed"].params == 40
    assert shaped.total_params == 3 * 8 * 4 + 8 + 8 + 40  # conv, its bias, the two tensors
    model = dlspec.compile_spec(spec)
    state = model.state_dict()
    assert state["cls_token.weight"].shape == (1, 8)
    assert state["pos_embed.weight"].shape == (5, 8)
    x = torch.randn(3, 3, 4, 4)
    tokens = model.patches(x).flatten(2).transpose(1, 2)  # (B, 4, 8)
    cls = state["cls_token.weight"].expand(3, 1, 8)
    expected = torch.cat([cls, tokens], dim=1) + state["pos_embed.weight"]
    torch.testing.assert_close(model(x), expected)


def test_the_output_is_a_view_whose_gradient_adds_up_over_the_batch() -> None:
    module = _module("parameter", {"shape": [2, 3]}, (7,))
    out = module(torch.zeros(4, 7))
    assert out.shape == (4, 2, 3)
    assert out.data_ptr() == module.weight.data_ptr() and out.stride()[0] == 0  # no copy
    out.sum().backward()
    torch.testing.assert_close(module.weight.grad, torch.full((2, 3), 4.0))
    for mode in (torch.no_grad, torch.inference_mode):  # as other layers' outputs there
        with mode():
            out = module(torch.zeros(4, 7))
        assert not out.requires_grad and out.data_ptr() == module.weight.data_ptr()


@pytest.mark.parametrize(("init", "value"), [(1.0e-6, 1.0e-6), (0, 0.0), ("zeros", 0.0),
                                             ("ones", 1.0), (-0.5, -0.5)])
def test_constant_inits(init: Any, value: float) -> None:
    weight = _module("parameter", {"shape": [16, 1, 1], "init": init}, (16, 4, 4)).weight
    assert torch.equal(weight, torch.full((16, 1, 1), value))


def test_drawn_inits_have_the_stated_spread() -> None:
    torch.manual_seed(0)
    shape = (200, 100)  # 20,000 draws: the sample std is within 2% of the true one
    normal = _module("parameter", {"shape": list(shape), "init": "normal", "std": 0.5}, (1,))
    assert abs(normal.weight.std().item() - 0.5) < 0.01
    assert normal.weight.abs().max() > 1.0  # untruncated: beyond 2 std somewhere
    truncated = _module("parameter", {"shape": list(shape)}, (1,)).weight  # the default
    assert truncated.abs().max() <= 0.04  # ±2 std of 0.02
    # N(0, 1) truncated at ±2 has std 0.880
    assert abs(truncated.std().item() - 0.02 * 0.880) < 0.0005


def test_std_goes_only_with_a_drawn_init() -> None:
    params = lookup_kind("parameter").Params
    with pytest.raises(ValidationError, match="std is used only by init normal or trunc"):
        params.model_validate({"shape": [4], "init": "zeros", "std": 0.1})
    with pytest.raises(ValidationError):
        params.model_validate({"shape": []})
    with pytest.raises(ValidationError):
        params.model_validate({"shape": [4], "init": "uniform"})


def test_convnext_layer_scale_multiplies_each_channel() -> None:
    spec = _spec([{"conv2d": {"out_channels": 4, "kernel_size": 1}, "name": "mix"},
                  {"parameter": {"shape": [4, 1, 1], "init": 1.0e-6}, "name": "gamma"},
                  {"multiply": None, "from": ["mix", "gamma"]}], _image([2, 3, 3]))
    model = dlspec.compile_spec(spec)
    model.gamma.weight.data = torch.arange(1.0, 5.0).reshape(4, 1, 1)
    x = torch.randn(2, 2, 3, 3)
    torch.testing.assert_close(model(x), model.mix(x) * torch.arange(1.0, 5.0).view(1, 4, 1, 1))


def test_a_parameter_reads_token_ids_for_the_batch_size_and_is_float() -> None:
    spec = _spec([{"parameter": [6, 4], "name": "positions"}], _image([6], "int64"))
    (shaped,) = dlspec.shapes(spec).values()
    assert shaped.tensors["positions"].dtype == "float32"
    out = dlspec.compile_spec(spec)(torch.zeros(3, 6, dtype=torch.int64))
    assert out.dtype == torch.float32 and out.shape == (3, 6, 4)


def test_the_kinds_own_init_survives_compilation() -> None:
    spec = _spec([{"parameter": {"shape": [3], "init": 0.25}, "name": "p"}], _image([2]))
    assert torch.equal(dlspec.compile_spec(spec).p.weight, torch.full((3,), 0.25))


# --- step and sign --------------------------------------------------------------------------

def test_step_follows_the_perceptron_convention() -> None:
    x = torch.tensor([[-2.0, -1e-30, 0.0, 1e-30, 3.0]])
    assert _module("step", {}, (5,))(x).tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]
    for at_zero in (1.0, 0.5, 0.3):
        torch.testing.assert_close(_module("step", {"at_zero": at_zero}, (5,))(x),
                                   torch.heaviside(x, torch.tensor(at_zero)))


def test_sign_is_torch_sign() -> None:
    spec = _spec(["sign"], _image([4]))
    x = torch.tensor([[-3.0, 0.0, 2.5, -0.0]])
    assert torch.equal(dlspec.compile_spec(spec)(x), torch.sign(x))


NAND = [{"linear": 1, "name": "gate"}, {"step": None, "name": "fire"}]


def test_a_hand_set_perceptron_computes_nand() -> None:
    model = dlspec.compile_spec(_spec(NAND, _image([2])))
    model.load_state_dict({"gate.weight": torch.tensor([[-2.0, -2.0]]),
                           "gate.bias": torch.tensor([3.0])})
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert model(x).flatten().tolist() == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("threshold", ["step", "sign"])
def test_thresholds_give_zero_gradients_not_a_broken_graph(threshold: str) -> None:
    model = dlspec.compile_spec(_spec([{"linear": 3, "name": "gate"}, threshold], _image([2])))
    model(torch.randn(4, 2)).sum().backward()  # would raise if the graph were cut
    assert model.gate.weight.grad is not None
    assert torch.equal(model.gate.weight.grad, torch.zeros(3, 2))


# --- linear over the last axis --------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (2, 1, 3, 4)])
def test_linear_applies_to_the_last_axis_of_any_rank(shape: tuple[int, ...]) -> None:
    kind = lookup_kind("linear")
    built = kind.build(kind.Params.model_validate({"out_features": 6}), [shape])
    assert built.output == (*shape[:-1], 6)
    module = built.instantiate()
    x = torch.randn(2, *shape)
    torch.testing.assert_close(module(x), F.linear(x, module.weight, module.bias))


def test_linear_still_refuses_a_scalar_per_sample() -> None:
    problem = _problem("linear", {"out_features": 2}, ())
    assert "scalar per sample" in problem.message and problem.hint


# --- layernorm ------------------------------------------------------------------------------

class LayerNorm2dByStatistics(torch.nn.Module):
    """ConvNeXt's own LayerNorm in channels_first mode: mean and variance over dim 1."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        super().__init__()
        self.weight, self.bias, self.eps = weight, bias, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


@pytest.mark.parametrize("shape", [(6, 4, 5), (6, 7), (6, 2, 3, 3)])
def test_channels_first_layernorm_is_convnexts_layernorm2d(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = _module("layernorm", {"channels_first": True, "eps": 1.0e-6}, shape)
    assert {k: v.shape for k, v in module.state_dict().items()} == {"weight": (6,), "bias": (6,)}
    with torch.no_grad():
        module.weight.normal_()
        module.bias.normal_()
    x = torch.randn(3, *shape) * 3 + 1
    by_permute = F.layer_norm(x.movedim(1, -1), (6,), module.weight, module.bias,
                              1e-6).movedim(-1, 1)
    by_statistics = LayerNorm2dByStatistics(module.weight, module.bias, 1e-6)(x)
    out = module(x)
    torch.testing.assert_close(out, by_permute, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, by_statistics, rtol=0, atol=1e-5)
    # every position of every sample is normalized over its channels
    torch.testing.assert_close(((out - module.bias.view(1, 6, *[1] * (len(shape) - 1)))
                                / module.weight.view(1, 6, *[1] * (len(shape) - 1))).mean(1),
                               torch.zeros(3, *shape[1:]), rtol=0, atol=1e-5)


def test_channels_first_layernorm_without_affine() -> None:
    module = _module("layernorm", {"channels_first": True, "elementwise_affine": False},
                     (5, 3, 3))
    assert dict(module.state_dict()) == {}
    x = torch.randn(2, 5, 3, 3)
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False,
                                                               keepdim=True) + 1e-5)
    torch.testing.assert_close(module(x), expected, rtol=0, atol=1e-5)


def test_layernorm_on_a_map_must_be_told_what_to_normalize() -> None:
    problem = _problem("layernorm", {}, (16, 8, 8))
    assert problem.message == ("layernorm on a 16×8×8 input must be told what to normalize: by "
                               "default it would normalize over the last axis (8) alone")
    assert "channels_first: true" in (problem.hint or "")
    assert "normalized_shape: [16, 8, 8]" in (problem.hint or "")
    # said either way, it builds
    whole = _module("layernorm", {"normalized_shape": [16, 8, 8]}, (16, 8, 8))
    assert isinstance(whole, torch.nn.LayerNorm) and whole.normalized_shape == (16, 8, 8)
    last = _module("layernorm", {"normalized_shape": 8}, (16, 8, 8))
    assert last.normalized_shape == (8,)
    # a sequence (T, D) keeps the default over its features
    assert _module("layernorm", {}, (10, 64)).normalized_shape == (64,)


def test_layernorm_on_a_map_is_located_in_the_spec() -> None:
    spec = _spec([{"conv2d": {"out_channels": 4, "kernel_size": 3}}, "layernorm"],
                 _image([1, 6, 6]))
    with pytest.raises(ShapeError) as caught:
        dlspec.shapes(spec)
    (problem,) = caught.value.problems
    assert list(problem.path) == ["network", 1, "layernorm"] and problem.location is not None
    assert "channels_first" in (problem.hint or "")


def test_channels_first_normalized_shape_must_be_the_channels() -> None:
    problem = _problem("layernorm", {"channels_first": True, "normalized_shape": [8, 8]},
                       (16, 8, 8))
    assert problem.message.startswith("with channels_first, layernorm normalizes the 16 "
                                      "channels of the 16×8×8 input")
    assert isinstance(_module("layernorm", {"channels_first": True, "normalized_shape": 16},
                              (16, 8, 8)), modules.ChannelsFirstLayerNorm)


def test_layernorm_describe_says_channels_first() -> None:
    kind = lookup_kind("layernorm")
    assert kind.describe(kind.Params.model_validate({"channels_first": True})) == \
        "channels first"


# --- drop path ------------------------------------------------------------------------------

def test_drop_path_in_eval_is_exactly_the_identity() -> None:
    module = _module("drop_path", {"p": 0.5}, (3, 4)).eval()
    x = torch.randn(8, 3, 4)
    assert module(x) is x


def test_drop_path_in_training_drops_whole_samples() -> None:
    torch.manual_seed(0)
    p, samples = 0.25, 4000
    module = _module("drop_path", {"p": p}, (3, 2)).train()
    x = torch.rand(samples, 3, 2) + 0.5  # no zeros of its own
    out = module(x)
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.isclose(out, x / (1 - p)).flatten(1).all(1)
    assert bool((dropped ^ kept).all())  # every sample is one or the other, whole
    # the dropped fraction is p, within 4 standard deviations (0.027)
    assert abs(dropped.float().mean().item() - p) < 4 * (p * (1 - p) / samples) ** 0.5


def test_drop_path_probability_below_one() -> None:
    params = lookup_kind("drop_path").Params
    with pytest.raises(ValidationError, match="less than 1"):
        params.model_validate({"p": 1.0})
    assert params.model_validate({"p": 0.0}).p == 0.0


# --- pooling dilation in summaries ----------------------------------------------------------

def test_max_pooling_dilation_is_described() -> None:
    kind = lookup_kind("maxpool2d")
    assert kind.describe(kind.Params.model_validate({"kernel_size": 3, "dilation": 2})) == \
        "3×3, dilation 2"
    assert kind.describe(kind.Params.model_validate({"kernel_size": 2})) == "2×2"


# --- all together: a code print and an export -----------------------------------------------

BLOCK = [  # a dilated max-pool, a ConvNeXt-style block and a class token
    {"conv2d": {"out_channels": 4, "kernel_size": 3, "padding": 1}, "name": "stem"},
    {"maxpool2d": {"kernel_size": 3, "padding": 1, "dilation": 2, "stride": 1},
     "name": "pooled"},
    {"conv2d": {"out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 4}},
    {"layernorm": {"channels_first": True, "eps": 1.0e-6}, "name": "norm"},
    {"parameter": {"shape": [4, 1, 1], "init": 1.0e-6}, "name": "gamma"},
    {"multiply": None, "from": ["norm", "gamma"]},
    {"drop_path": 0.2},
    {"add": None, "from": ["pooled", "drop_path_1"]},
    {"flatten": 2},
    {"permute": [0, 2, 1], "name": "tokens"},
    {"parameter": [1, 4], "name": "cls_token"},
    {"concat": 1, "from": ["cls_token", "tokens"]},
    {"linear": 3},
    "sign",
    "step",
]


def test_the_new_kinds_print_as_code_and_export(tmp_path: Path) -> None:
    spec = _spec(BLOCK, _image([2, 4, 4]), name="modern")
    (shaped,) = dlspec.shapes(spec).values()
    assert shaped.tensors["linear_1"].shape == (5, 3)  # 4 tokens and the class token
    source = generate_code(shaped)
    for name in ("class LearnedTensor", "class ChannelsFirstLayerNorm", "class DropPath",
                 "class Step", "LearnedTensor((4, 1, 1), init=1e-06)"):
        assert name in source
    model = dlspec.compile_spec(spec).eval()
    namespace: dict[str, Any] = {"__name__": "generated"}
    exec(compile(source, "generated.py", "exec"), namespace)  # a test may exec
    printed = namespace[type(model).__name__]().eval()
    printed.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(printed(x), model(x))

    (result,) = dlspec.export_spec(spec, tmp_path / "modern.onnx")
    assert all(c.passed for c in result.comparisons)
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "modern.onnx")).graph.node}
    assert not ops & {"RandomUniform", "RandomUniformLike", "Bernoulli", "Dropout"}  # eval


def test_bad_parameter_specs_are_located() -> None:
    spec = _spec([{"parameter": {"shape": [4], "init": "uniform"}},
                  {"parameter": {"shape": [4], "init": "zeros", "std": 0.1}}], _image([2]))
    with pytest.raises(SpecError) as caught:
        dlspec.graphs(spec)
    first, second = caught.value.problems
    assert [first.path, second.path] == [("network", 0, "parameter", "init"),
                                         ("network", 1, "parameter")]
    assert "found 'uniform'" in first.message
    assert second.message == "std is used only by init normal or trunc_normal, not by init 'zeros'"
