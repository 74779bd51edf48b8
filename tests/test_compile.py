"""Compilation: a real torch.fx.GraphModule named like the spec, matching inferred shapes."""

from __future__ import annotations

import pytest
import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

import dlspec
from conftest import SPECS, spec_text

RESIDUAL = spec_text("""
blocks:
  block:
    params: {width: int}
    layers:
      - residual: {body: [{linear: $width}, relu, {linear: $width}], shortcut: project}
      - relu
network:
  - {linear: 8, name: stem}
  - {block: {width: 8}, repeat: 2, name: stage1}
  - {block: {width: 16}, name: stage2}
  - {linear: 3, name: head}
""")


def test_compiled_module_is_a_graph_module_with_spec_names() -> None:
    model = dlspec.compile_spec(dlspec.loads(RESIDUAL))
    assert isinstance(model, fx.GraphModule)
    keys = list(model.state_dict())
    assert keys[:2] == ["stem.weight", "stem.bias"]
    assert "stage1.1.residual_1.linear_2.weight" in keys
    assert "stage2.residual_1.shortcut.weight" in keys  # width changes: projected
    assert not any("stage1.0.residual_1.shortcut" in k for k in keys)  # identity: no module
    assert model(torch.randn(5, 4)).shape == (5, 3)


def test_shape_prop_agrees_with_static_inference() -> None:
    spec = dlspec.loads(RESIDUAL)
    shaped = dlspec.shapes(spec)["tiny"]
    model = dlspec.compile_spec(spec)
    ShapeProp(model).propagate(torch.randn(2, 4))
    for node in model.graph.nodes:
        if node.op == "call_module":
            expected = shaped.tensors[node.target].shape
            assert tuple(node.meta["tensor_meta"].shape[1:]) == expected, node.target


def test_frozen_layers_do_not_require_grad_and_init_is_applied() -> None:
    model = dlspec.compile_spec(dlspec.loads(spec_text("""
        network:
          - {linear: 8, trainable: false, name: frozen}
          - {linear: 2, init: {weight: zeros, bias: ones}, name: head}
        """)))
    assert not any(p.requires_grad for p in model.frozen.parameters())
    assert torch.equal(model.head.weight, torch.zeros(2, 8))
    assert torch.equal(model.head.bias, torch.ones(2))
    shaped = dlspec.shapes(dlspec.loads(spec_text(
        "network: [{linear: 8, trainable: false}, {linear: 2}]\n")))["tiny"]
    assert shaped.total_params == 58 and shaped.trainable_params == 18


def test_multiple_outputs_are_returned_in_order() -> None:
    model = dlspec.compile_spec(dlspec.loads(spec_text("""
        network:
          - {linear: 8, name: trunk}
          - {linear: 3, name: cls}
          - {linear: 1, name: reg, from: trunk}
        outputs: {logits: cls, score: reg}
        """)))
    logits, score = model(torch.randn(2, 4))
    assert logits.shape == (2, 3) and score.shape == (2, 1)
    assert model.dlspec_outputs == ["logits", "score"]


@pytest.mark.parametrize("name", ["lenet5", "mlp"])
def test_compiled_forward_and_backward(name: str) -> None:
    spec = dlspec.load(SPECS / f"{name}.yaml")
    model = dlspec.compile_spec(spec)
    (decl,) = dlspec.graphs(spec)[spec.name].inputs.values()
    out = model(torch.randn(3, *decl.shape))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "unet_small", "inception_block", "multi_input",
                                  "transformer_encoder"])
def test_inferred_shapes_match_a_real_forward_pass(name: str) -> None:
    """Shapes declared by kinds (no meta run) agree with what PyTorch computes."""
    spec = dlspec.load(SPECS / f"{name}.yaml")
    shaped = dlspec.shapes(spec)[spec.name]
    model = dlspec.compile_spec(spec).eval()
    example = [torch.randint(0, 2, (1, *d.shape)) if d.dtype.startswith("int")
               else torch.randn(1, *d.shape) for d in shaped.graph.inputs.values()]
    ShapeProp(model).propagate(*example)
    for node in model.graph.nodes:
        if node.op == "call_module":
            assert tuple(node.meta["tensor_meta"].shape[1:]) == shaped.tensors[node.target].shape


# ------------------------------------------------------------------ names and sizes


def test_reserved_names_cover_every_attribute_of_the_compiled_module() -> None:
    from torch.fx.graph import _custom_builtins

    from dlspec.spec.model import RESERVED_NAMES

    model = dlspec.compile_spec(dlspec.loads(RESIDUAL))
    own = {name for name, _ in model.named_children()}
    attributes = {n for n in {*dir(model), *vars(model), *dir(torch.nn.Module())}
                  if not n.startswith("_")} - own
    assert not attributes - RESERVED_NAMES, "add these to RESERVED_NAMES"
    assert set(_custom_builtins) <= RESERVED_NAMES  # fx's globals in forward()


@pytest.mark.parametrize("name", ["__init__", "__class__", "_modules", "_parameters",
                                  "forward", "training", "state_dict", "meta", "code",
                                  "recompile", "self", "torch", "device"])
def test_reserved_names_are_refused_for_layers_inputs_and_blocks(name: str) -> None:
    layer = spec_text(f"network:\n  - {{name: {name}, linear: 2}}\n")
    data = spec_text("network:\n  - linear: 2\n").replace("  x:", f"  {name}:")
    block = spec_text(f"blocks:\n  {name}: {{layers: [relu]}}\nnetwork:\n  - {name}\n")
    for text in (layer, data, block):
        with pytest.raises(dlspec.SpecError, match="reserved"):
            dlspec.graphs(dlspec.loads(text))


@pytest.mark.parametrize(("spec_name", "class_name"), [
    ("none", "NoneModel"), ("true", "TrueModel"), ("reshape", "ReshapeModel"),
    ("r_n_n", "RNNModel"), ("positional_encoding", "PositionalEncodingModel"),
    ("lenet5", "Lenet5"), ("a__b", "AB"),
])
def test_class_names_are_identifiers_that_shadow_nothing(spec_name: str, class_name: str) -> None:
    text = spec_text("network:\n  - linear: 2\n").replace("name: ", f"name: '{spec_name}'  #", 1)
    assert type(dlspec.compile_spec(dlspec.loads(text))).__name__ == class_name


def test_a_network_larger_than_memory_is_refused_with_the_numbers() -> None:
    from dlspec.graph import infer_shapes

    # 2×10^6 × 2×10^6 weights: each size is plausible, the product is 16 TB
    spec = dlspec.loads(spec_text("network:\n  - linear: 2000000\n  - linear: 2000000\n"))
    with pytest.raises(dlspec.ShapeError) as caught:
        infer_shapes(dlspec.graphs(spec)[spec.name])
    (problem,) = caught.value.problems
    assert problem.path == ("network", 1, "linear")
    assert "needs 14.6 TiB as float32" in problem.message
    assert "4e+12 weights" in problem.message and "linear_2 alone" in problem.message


def test_memory_check_counts_activations_and_buffers() -> None:
    from dlspec.errors import Problem
    from dlspec.memory import check_fits, format_bytes

    assert format_bytes(24 << 30) == "24 GiB" and format_bytes(7 << 60) == "7 EiB"
    fits = check_fits([(("a",), "a", 10)], [(("b",), "b's output", 10)], memory=80)
    assert fits is None
    too_big = check_fits([(("a",), "a", 10)], [(("b",), "b's output", 11)], memory=80)
    assert isinstance(too_big, Problem) and too_big.path == ("b",)
    assert "b's output alone is 11 values per sample" in too_big.message
    # a sinusoidal table of 2^31 positions is a buffer, not a parameter: it counts all the same
    spec = dlspec.loads(spec_text("network:\n  - {positional_encoding: {max_len: 2147483647}}\n"
                                  ).replace("shape: [4]", "shape: [5, 512]"))
    with pytest.raises(dlspec.ShapeError, match="weights"):
        dlspec.shapes(spec)


def test_the_zoo_fits() -> None:
    for name in ("resnet152", "vgg19"):
        assert dlspec.shapes(dlspec.load(SPECS / f"{name}.yaml"))  # no memory problem
