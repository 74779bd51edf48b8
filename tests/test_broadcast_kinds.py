"""Merges that broadcast as PyTorch does (per sample), the new merges and the element-wise
math kinds: an SE block as a spec equals the same block written in torch; errors name the
broadcasting rule, the axis and both shapes, at the layer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError

import dlspec
from dlspec.layers.merge import broadcast
from dlspec.layers.registry import ShapeProblem, lookup_kind

SE_BLOCK = """\
dlspec: 1
name: se
inputs:
  x: {shape: [3, 6, 6]}
network:
  - {name: features, conv2d: {out_channels: 8, kernel_size: 3, padding: 1}}
  - {name: squeeze, adaptive_avgpool2d: 1}
  - {name: reduce, conv2d: {out_channels: 2, kernel_size: 1}}
  - relu
  - {name: expand, conv2d: {out_channels: 8, kernel_size: 1}}
  - {name: gate, sigmoid}
  - {name: excited, multiply, from: [features, gate]}
"""


def _network(text: str) -> torch.nn.Module:
    return dlspec.compile_spec(dlspec.loads(text)).eval()


def _spec(inputs: dict[str, list[int]], entry: str) -> str:
    declared = "".join(f"  {name}: {{shape: {shape}}}\n" for name, shape in inputs.items())
    return f"dlspec: 1\nname: t\ninputs:\n{declared}network:\n  - {entry}\n"


def test_an_se_block_gates_the_map_it_came_from() -> None:
    model = _network(SE_BLOCK)
    x = torch.randn(2, 3, 6, 6)
    conv = torch.nn.functional.conv2d
    features = conv(x, model.features.weight, model.features.bias, padding=1)
    squeezed = features.mean(dim=(2, 3), keepdim=True)  # (B, 8, 1, 1)
    hidden = torch.relu(conv(squeezed, model.reduce.weight, model.reduce.bias))
    gate = torch.sigmoid(conv(hidden, model.expand.weight, model.expand.bias))
    with torch.no_grad():
        torch.testing.assert_close(model(x), features * gate)
    (shaped,) = dlspec.shapes(dlspec.loads(SE_BLOCK)).values()
    assert shaped.tensors["excited"].shape == (8, 6, 6)
    assert "excited = torch.mul(features, gate)" in model.code  # named like the layer


def test_a_lower_rank_input_broadcasts_per_sample_not_against_the_batch() -> None:
    # PyTorch alone would align a (B, 4) bias with the (B, 3, 4) map's 3×4: the batch
    # axis against the 3. dlspec inserts the missing axis after the batch axis.
    model = _network(_spec({"x": [3, 4], "b": [4]}, "{add, from: [x, b]}"))
    x, b = torch.randn(3, 3, 4), torch.randn(3, 4)
    torch.testing.assert_close(model(x, b), x + b[:, None, :])
    assert broadcast("add", [(3, 4), (4,)]) == ((3, 4), (0, 1))
    assert broadcast("add", [(1, 4), (3, 1), (3, 4)]) == ((3, 4), ())


@pytest.mark.parametrize(("kind", "expected"), [
    ("subtract", lambda a, b: a - b), ("divide", lambda a, b: a / b),
    ("maximum", torch.maximum), ("minimum", torch.minimum), ("add", torch.add),
    ("multiply", torch.mul)])
def test_binary_merges_follow_from_order(kind: str, expected: Any) -> None:
    model = _network(_spec({"a": [2, 3], "b": [2, 1]}, f"{{{kind}, from: [b, a]}}"))
    a, b = torch.randn(4, 2, 3), torch.rand(4, 2, 1) + 0.5
    # the network's arguments follow `inputs:`; the operands follow `from:` (b first)
    torch.testing.assert_close(model(a, b), expected(b, a))


def test_maximum_folds_over_three_inputs_but_subtract_takes_two() -> None:
    model = _network(_spec({"a": [3], "b": [3], "c": [3]}, "{maximum, from: [a, b, c]}"))
    a, b, c = torch.randn(3, 2, 3)
    torch.testing.assert_close(model(a, b, c), torch.maximum(torch.maximum(a, b), c))
    with pytest.raises(dlspec.SpecError, match="subtract reads 2 inputs"):
        dlspec.shapes(dlspec.loads(_spec({"a": [3], "b": [3], "c": [3]},
                                         "{subtract, from: [a, b, c]}")))


@pytest.mark.parametrize(("entry", "expected"), [
    ("abs", torch.abs), ("exp", torch.exp), ("neg", torch.neg),
    ("log", torch.log), ("sqrt", torch.sqrt),
    ("scale: 0.5", lambda x: 0.5 * x), ("scale: -2", lambda x: -2 * x),
    ("{clamp: {min: 0, max: 6}}", lambda x: torch.clamp(x, 0, 6)),
    ("{clamp: {max: 0.5}}", lambda x: torch.clamp(x, max=0.5)),
    ("{clamp: {min: -1}}", lambda x: torch.clamp(x, min=-1))])
def test_unary_kinds_match_torch(entry: str, expected: Any) -> None:
    model = _network(_spec({"x": [5]}, entry))
    x = torch.randn(3, 5) * 4
    # log and sqrt of the negative values give NaN, as in PyTorch
    torch.testing.assert_close(model(x), expected(x), equal_nan=True)


def test_shapes_that_do_not_broadcast_are_located_with_the_rule() -> None:
    text = _spec({"a": [16, 8, 8], "b": [8, 8, 8]}, "{name: gated, multiply, from: [a, b]}")
    with pytest.raises(dlspec.ShapeError) as caught:
        dlspec.shapes(dlspec.loads(text, "net.yaml"))
    (problem,) = caught.value.problems
    assert problem.path == ("network", 0, "multiply")
    assert problem.location is not None and problem.location.line == 7
    assert ("multiply needs inputs of one shape, or of shapes that broadcast (sizes equal or 1, "
            "axes aligned from the right), but axis 1 is 16 in input 1 (16×8×8) and 8 in "
            "input 2 (8×8×8)") in problem.message
    assert "adaptive_avgpool2d: 1" in (problem.hint or "")


def test_the_axis_named_counts_from_the_right_across_ranks() -> None:
    with pytest.raises(ShapeProblem) as caught:
        broadcast("add", [(4,), (2, 3)])
    assert "axis 2 is 4 in input 1 (4) and 3 in input 2 (2×3)" in caught.value.message
    with pytest.raises(ShapeProblem) as caught:
        broadcast("maximum", [(1, 5), (2, 5), (3, 1)])
    assert "axis 1 is 2 in input 2 (2×5) and 3 in input 3 (3×1)" in caught.value.message


@pytest.mark.parametrize(("params", "words"), [
    ({"min": 6, "max": 0}, "max 0 is below min 6"),
    ({}, "clamp needs min, max or both"),
    ({"min": "0"}, "min"),
    ({"minimum": 0}, "minimum")])
def test_bad_clamp_bounds_are_refused(params: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        lookup_kind("clamp").Params.model_validate(params)


def test_clamp_bounds_in_the_wrong_order_are_located_at_max() -> None:
    with pytest.raises(dlspec.SpecError) as caught:
        dlspec.graphs(dlspec.loads(_spec({"x": [5]}, "{clamp: {min: 6, max: 0}}"), "net.yaml"))
    (problem,) = caught.value.problems
    assert problem.path == ("network", 0, "clamp", "max")
    assert problem.location is not None and (problem.location.line, problem.location.column) \
        == (6, 27)
    assert problem.message == "max 0 is below min 6: clamp needs min ≤ max"


def test_scale_needs_a_finite_number() -> None:
    params = lookup_kind("scale").Params
    for bad in (float("inf"), float("nan"), "2", True):
        with pytest.raises(ValidationError):
            params.model_validate({"factor": bad})


def test_divide_refuses_integer_inputs() -> None:
    text = "dlspec: 1\nname: t\ninputs:\n  a: {shape: [3], dtype: int64}\n" \
           "  b: {shape: [3], dtype: int64}\nnetwork:\n  - {divide, from: [a, b]}\n"
    with pytest.raises(dlspec.ShapeError, match="divide needs a floating-point input"):
        dlspec.shapes(dlspec.loads(text))


def test_an_se_gate_as_a_residual_multiplies_the_identity_shortcut() -> None:
    text = _spec({"x": [8, 4, 4]}, "residual: {body: [{adaptive_avgpool2d: 1}, "
                                   "{conv2d: {out_channels: 8, kernel_size: 1}}, sigmoid], "
                                   "merge: multiply}")
    model = _network(text)
    x = torch.randn(2, 8, 4, 4)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    gate = torch.sigmoid(conv(x.mean(dim=(2, 3), keepdim=True)))
    with torch.no_grad():
        torch.testing.assert_close(model(x), gate * x)


def test_verification_counts_nan_on_both_sides_as_agreement() -> None:
    import numpy as np

    from dlspec.export.verify import _difference

    expected = np.array([1.0, np.nan, np.inf], dtype=np.float32)
    assert _difference(expected, expected.copy(), 1e-5, 1e-4) == (0.0, 0.0, True)
    for wrong in ([1.0, 0.0, np.inf], [np.nan, np.nan, np.inf], [1.0, np.nan, 5.0]):
        assert _difference(expected, np.array(wrong, dtype=np.float32), 1e-5, 1e-4)[2] is False
