"""Tensor plumbing kinds (select, slice, expand, tile, transpose, channel_shuffle, pad, mean,
sum, max): each computes what its PyTorch operation computes, its shape is known without a
run, wrong axes and ranges are located errors, and the ViT and ShuffleNet idioms they exist
for compile, print as code and export."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import yaml

import dlspec
from dlspec.codegen import generate_code


def _spec(entries: list[Any], shape: tuple[int, ...], dtype: str = "float32") -> str:
    return yaml.safe_dump({"dlspec": 1, "name": "plumbing",
                           "inputs": {"x": {"shape": list(shape), "dtype": dtype}},
                           "network": entries}, sort_keys=False)


Reference = Callable[[torch.Tensor], torch.Tensor]

# (network entry, per-sample input shape, what PyTorch computes on the batch)
SAME_AS_TORCH: list[tuple[Any, tuple[int, ...], Reference]] = [
    ({"select": {"dim": 1, "index": 0}}, (5, 8), lambda x: x[:, 0]),
    ({"select": 2}, (5, 8), lambda x: x[:, 2]),  # the scalar is the index; dim defaults to 1
    ({"select": {"dim": -1, "index": -1}}, (3, 4), lambda x: x[..., -1]),
    ({"slice": {"dim": 1, "start": 0, "end": 8}}, (12, 3), lambda x: x[:, 0:8]),
    ({"slice": {"dim": 2, "start": 1, "step": 2}}, (3, 7), lambda x: x[:, :, 1::2]),
    ({"slice": {"dim": -1, "start": -3}}, (4, 6), lambda x: x[..., -3:]),
    ({"slice": {"dim": 1, "end": 100}}, (4,), lambda x: x[:, :100]),  # clamped, as Python does
    ({"expand": {"dim": 1, "size": 4}}, (1, 3), lambda x: x.expand(-1, 4, -1)),
    ({"expand": {"dim": -1, "size": 5}}, (2, 1), lambda x: x.expand(-1, -1, 5)),
    ({"tile": {"dim": 2, "times": 3}}, (2, 3), lambda x: x.repeat(1, 1, 3)),
    ({"transpose": {"dim0": 1, "dim1": -1}}, (2, 3, 4), lambda x: x.transpose(1, 3)),
    ({"channel_shuffle": 3}, (6, 2, 2), lambda x: F.channel_shuffle(x, 3)),
    ({"pad": [1, 2]}, (3, 4), lambda x: F.pad(x, (1, 2))),
    ({"pad": {"pad": [1, 2, 0, 1], "value": 0.5}}, (2, 3, 4),
     lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)),
    ({"pad": {"pad": [2, 2, 1, 1], "mode": "reflect"}}, (2, 5, 5),
     lambda x: F.pad(x, (2, 2, 1, 1), mode="reflect")),
    ({"pad": {"pad": [1, 0], "mode": "replicate"}}, (2, 4),
     lambda x: F.pad(x, (1, 0), mode="replicate")),
    ({"mean": [2, 3]}, (3, 4, 5), lambda x: x.mean((2, 3))),
    ({"mean": {"dim": 1, "keepdim": True}}, (3, 4), lambda x: x.mean(1, keepdim=True)),
    ({"sum": {"dim": -1, "keepdim": True}}, (3, 4), lambda x: x.sum(-1, keepdim=True)),
    ({"sum": [1, 2]}, (3, 4), lambda x: x.sum((1, 2))),
    ({"max": [1, 2]}, (3, 4), lambda x: x.amax((1, 2))),
    ({"max": 1}, (3, 4), lambda x: x.max(1).values),
]


@pytest.mark.parametrize(("entry", "shape", "reference"), SAME_AS_TORCH,
                         ids=[f"{next(iter(e))}-{i}" for i, (e, _, _) in enumerate(SAME_AS_TORCH)])
def test_each_kind_computes_what_torch_computes(entry: Any, shape: tuple[int, ...],
                                                reference: Reference) -> None:
    spec = dlspec.loads(_spec([entry], shape))
    (shaped,) = dlspec.shapes(spec).values()
    model = dlspec.compile_spec(spec)
    x = torch.randn(2, *shape)
    out = model(x)
    expected = reference(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # the declared shape is the real one (the kinds declare it: no meta run is needed)
    (info,) = shaped.outputs().values()
    assert info.shape == tuple(expected.shape[1:])


def test_channel_shuffle_interleaves_the_groups() -> None:
    # ShuffleNet's shuffle is reshape (G, C/G) → transpose → flatten: channel order 0 3 1 4 2 5
    spec = dlspec.loads(_spec([{"channel_shuffle": 3}], (6, 1)))
    x = torch.arange(6.0).reshape(1, 6, 1)
    assert dlspec.compile_spec(spec)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_select_slice_and_max_keep_integer_inputs_integer() -> None:
    entries = [{"slice": {"dim": 1, "start": 1}}, {"max": 1}]
    spec = dlspec.loads(_spec(entries, (5,), dtype="int64"))
    (shaped,) = dlspec.shapes(spec).values()
    (info,) = shaped.outputs().values()
    assert (info.shape, info.dtype) == ((), "int64")
    x = torch.randint(0, 9, (3, 5))
    torch.testing.assert_close(dlspec.compile_spec(spec)(x), x[:, 1:].amax(1))


# (network entry, input shape, words the one error must hold; the path is network[1].KIND)
BAD: list[tuple[Any, tuple[int, ...], list[str]]] = [
    ({"select": {"dim": 0, "index": 0}}, (5, 8), ["dim 0 is the batch axis"]),
    ({"select": {"dim": 1, "index": 5}}, (5, 8), ["index 5 is out of range", "size 5"]),
    ({"select": {"dim": 1, "index": -6}}, (5, 8), ["index -6 is out of range"]),
    ({"select": {"dim": 3, "index": 0}}, (5, 8), ["dim 3 is out of range", "5×8"]),
    ({"select": {"dim": -3, "index": 0}}, (5, 8), ["dim -3 is the batch axis"]),
    ({"slice": {"dim": 1, "start": 4, "end": 2}}, (6,), ["empty", "size 6"]),
    ({"slice": {"dim": 1, "start": 9}}, (6,), ["empty"]),
    ({"slice": {"dim": 2, "end": 2}}, (6,), ["dim 2 is out of range"]),
    ({"expand": {"dim": 1, "size": 4}}, (3, 2), ["axis of size 1", "size 3", "tile"]),
    ({"tile": {"dim": 0, "times": 2}}, (3,), ["batch axis"]),
    ({"transpose": {"dim0": 1, "dim1": -2}}, (3, 4), ["same axis"]),
    ({"transpose": {"dim0": 1, "dim1": 3}}, (3, 4), ["dim1 3 is out of range"]),
    ({"channel_shuffle": 4}, (6, 2, 2), ["groups 4 must divide the 6 channels"]),
    ({"channel_shuffle": 2}, (6,), ["channels and at least one more axis"]),
    ({"pad": [1, 1, 1]}, (3, 4), ["two numbers per axis"]),
    ({"pad": [1, 1, 1, 1, 1, 1]}, (3, 4), ["pads 3 axes", "has 2"]),
    ({"pad": {"pad": [4, 0], "mode": "reflect"}}, (2, 4), ["smaller than the axis", "size 4"]),
    ({"pad": {"pad": [1, 1], "mode": "reflect"}}, (2, 3, 4), ["last 1, 2 or 3 axes"]),
    ({"pad": {"pad": [1, 1], "mode": "replicate", "value": 1.0}}, (2, 4),
     ["used only by mode constant"]),
    ({"mean": [1, -2]}, (3, 4), ["names an axis twice"]),
    ({"mean": 0}, (3, 4), ["batch axis"]),
    ({"max": 3}, (3, 4), ["dim 3 is out of range"]),
]

# refused by the parameters' types, before any shape is known: the path names the field
BAD_PARAMS: list[tuple[Any, str, list[str]]] = [
    ({"slice": {"dim": 1, "step": 0}}, "network[1].slice.step", ["greater than 0"]),
    ({"pad": [-1, 1]}, "network[1].pad", ["at least 0", "-1"]),
    ({"pad": {"pad": [1, 1], "mode": "circular"}}, "network[1].pad.mode", ["reflect"]),
    ({"tile": {"dim": 1, "times": 0}}, "network[1].tile.times", ["greater than 0"]),
    ({"expand": {"dim": 1}}, "network[1].expand", ["missing required key 'size'"]),
    ({"mean": []}, "network[1].mean", ["dim is empty"]),
]


def _error(entry: Any, shape: tuple[int, ...]) -> str:
    # an identity in front: the error is the second entry's (network[1])
    text = _spec([{"identity": None}, entry], shape)
    with pytest.raises(dlspec.SpecError) as caught:
        dlspec.shapes(dlspec.loads(text, file="spec.yaml"))
    assert len(caught.value.problems) == 1, str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(("entry", "shape", "words"), BAD,
                         ids=[f"{next(iter(e))}-{i}" for i, (e, _, _) in enumerate(BAD)])
def test_bad_axes_and_ranges_are_located_errors(entry: Any, shape: tuple[int, ...],
                                                words: list[str]) -> None:
    message = _error(entry, shape)
    kind = next(iter(entry))
    assert re.match(rf"spec\.yaml:\d+:\d+: network\[1\]\.{kind}: ", message), message
    missing = [w for w in words if w not in message]
    assert not missing, f"missing {missing} in: {message}"


@pytest.mark.parametrize(("entry", "path", "words"), BAD_PARAMS,
                         ids=[f"{next(iter(e))}-{i}" for i, (e, _, _) in enumerate(BAD_PARAMS)])
def test_bad_parameters_are_located_errors(entry: Any, path: str, words: list[str]) -> None:
    message = _error(entry, (3, 4))
    assert re.match(rf"spec\.yaml:\d+:\d+: {re.escape(path)}: ", message), message
    missing = [w for w in words if w not in message]
    assert not missing, f"missing {missing} in: {message}"


def test_mean_and_sum_refuse_integer_inputs() -> None:
    text = _spec([{"sum": 1}], (4,), dtype="int64")
    with pytest.raises(dlspec.SpecError, match="floating-point"):
        dlspec.shapes(dlspec.loads(text))


def test_the_check_command_exits_2_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("dlspec: 1\nname: vit_head\ninputs:\n  tokens: {shape: [5, 8]}\n"
                    "network:\n  - linear: 8\n  - select: {dim: 1, index: 5}\n")
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:7:13: network[1].select: "), first
    assert "index 5 is out of range for axis 1 of size 5" in first


# --- the idioms the kinds exist for -------------------------------------------------------

VIT_HEAD = """\
dlspec: 1
name: vit_tiny
inputs:
  image: {shape: [3, 32, 32]}
network:
  - {conv2d: {out_channels: 16, kernel_size: 8, stride: 8}, name: patchify}  # 16×4×4
  - flatten: 2                                                            # 16×16
  - transpose: {dim0: 1, dim1: 2}                                          # tokens × dim
  - transformer_encoder: {num_layers: 1, nhead: 2, dim_feedforward: 32}
  - {select: {dim: 1, index: 0}, name: class_token}                        # take token 0
  - linear: 10
"""

SHUFFLE_UNIT = """\
dlspec: 1
name: shuffle_unit
inputs:
  x: {shape: [8, 6, 6]}
network:
  - {slice: {dim: 1, end: 4}, name: kept}                    # channel split: half passes
  - {slice: {dim: 1, start: 4}, from: x, name: branch_in}
  - conv2d: {out_channels: 4, kernel_size: 1, bias: false}
  - batchnorm2d
  - relu
  - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, groups: 4, bias: false}
  - batchnorm2d
  - conv2d: {out_channels: 4, kernel_size: 1, bias: false}
  - batchnorm2d
  - {relu, name: branch}
  - {concat: 1, from: [kept, branch]}
  - channel_shuffle: 2
"""


def _same_as_generated(spec: Any, x: torch.Tensor) -> torch.Tensor:
    """Run the compiled model and the `dlspec code` source on x; they must agree."""
    (shaped,) = dlspec.shapes(spec).values()
    compiled = dlspec.compile_spec(spec).eval()
    namespace: dict[str, object] = {"__name__": "generated"}
    exec(compile(generate_code(shaped), "generated.py", "exec"), namespace)  # a test may exec
    generated = namespace[type(compiled).__name__]().eval()  # type: ignore[operator]
    generated.load_state_dict(compiled.state_dict())
    with torch.no_grad():
        out = compiled(x)
        torch.testing.assert_close(generated(x), out)
    return out


def test_a_vit_head_takes_the_class_token() -> None:
    spec = dlspec.loads(VIT_HEAD)
    (shaped,) = dlspec.shapes(spec).values()
    assert shaped.tensors["class_token"].shape == (16,)
    assert _same_as_generated(spec, torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_shufflenet_unit_splits_and_shuffles_its_channels() -> None:
    spec = dlspec.loads(SHUFFLE_UNIT)
    x = torch.randn(2, 8, 6, 6)
    out = _same_as_generated(spec, x)
    assert out.shape == (2, 8, 6, 6)
    # after the shuffle the even channels are the untouched half, in order
    torch.testing.assert_close(out[:, 0::2], x[:, :4])


def test_plumbing_beyond_the_examples_exports_and_verifies(tmp_path: Path) -> None:
    # the kinds' examples export in test_export.py; these are the other modes and signs
    entries = [
        {"pad": {"pad": [2, 1, 1, 1], "mode": "reflect"}},   # 4×8×9
        {"pad": {"pad": [0, 1, 0, 0], "mode": "replicate"}},  # 4×8×10
        {"slice": {"dim": -1, "start": -7, "step": 3}},      # 4×8×3
        {"transpose": {"dim0": -1, "dim1": 1}},              # 3×8×4
        {"tile": {"dim": 2, "times": 2}},                    # 3×16×4
        {"max": {"dim": 3, "keepdim": True}},                # 3×16×1
        {"expand": {"dim": -1, "size": 2}},                  # 3×16×2
        {"select": {"dim": 2, "index": -1}},                 # 3×2
        {"sum": [1, 2]},                                     # scalar
    ]
    spec = dlspec.loads(_spec(entries, (4, 6, 6)))
    (shaped,) = dlspec.shapes(spec).values()
    assert next(iter(shaped.outputs().values())).shape == ()
    (result,) = dlspec.export_spec(spec, tmp_path / "plumbing.onnx")
    assert all(c.passed for c in result.comparisons)
