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
    model = dlspec.build(dlspec.loads(RESIDUAL))
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
    model = dlspec.build(spec)
    ShapeProp(model).propagate(torch.randn(2, 4))
    for node in model.graph.nodes:
        if node.op == "call_module":
            expected = shaped.tensors[node.target].shape
            assert tuple(node.meta["tensor_meta"].shape[1:]) == expected, node.target


def test_frozen_layers_do_not_require_grad_and_init_is_applied() -> None:
    model = dlspec.build(dlspec.loads(spec_text("""
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
    model = dlspec.build(dlspec.loads(spec_text("""
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
    model = dlspec.build(spec)
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
    model = dlspec.build(spec).eval()
    example = [torch.randint(0, 2, (1, *d.shape)) if d.dtype.startswith("int")
               else torch.randn(1, *d.shape) for d in shaped.graph.inputs.values()]
    ShapeProp(model).propagate(*example)
    for node in model.graph.nodes:
        if node.op == "call_module":
            assert tuple(node.meta["tensor_meta"].shape[1:]) == shaped.tensors[node.target].shape
