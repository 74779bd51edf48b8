"""`export.onnx.dynamic_axes` naming any axis of any input: validated with located errors,
exported under those names, the outputs' axes following them, and verified at other sizes
that the network itself takes (the ones it refuses are said, not tried)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import dlspec
from conftest import SPECS
from dlspec.compile import compile_graph

IMAGE = """\
dlspec: 1
name: image
inputs:
  image: {shape: [3, 20, 16]}
network:
  - {conv2d: {out_channels: 4, kernel_size: 3, stride: 2}}
  - relu
  - {adaptive_avgpool2d: 1}
  - flatten
  - {linear: 2}
export: {onnx: {dynamic_axes: AXES}}
"""


def _problem(axes: str, spec: str = IMAGE) -> dlspec.errors.Problem:
    with pytest.raises(dlspec.SpecError) as raised:
        dlspec.loads(spec.replace("AXES", axes))
    return raised.value.problems[0]


@pytest.mark.parametrize(("axes", "path", "words"), [
    ("[batch, time]", (1,), ["unknown axis 'time'"]),
    ("[batch, {imag: [3, h, w]}]", (1, "imag"), ["unknown input 'imag'"]),
    ("[batch, {image: [3, h]}]", (1, "image"), ["3 axes per sample (3×20×16), but 2"]),
    ("[batch, {image: [1, h, w]}]", (1, "image", 0), ["axis 0 of image is 3", "not 1"]),
    ("[batch, {image: [3, side, side]}]", (1, "image", 2),
     ["side names axis 2 of image (16) and axis 1 of image (20)"]),
    ("[batch, {image: [3, batch, w]}]", (1, "image", 1), ["batch is the batch axis"]),
    ("[batch, {image: [3, 20, 16]}]", (1, "image"), ["name no axis, so none may vary"]),
    ("[batch, {image: [3, 2h, w]}]", (1, "image", 1), ["an axis name is letters"]),
    ("[batch, batch]", (1,), ["batch is listed twice"]),
    ("[batch, seq]", (), ["no input is a sequence"]),
])
def test_bad_dynamic_axes_are_located(axes: str, path: tuple[object, ...],
                                      words: list[str]) -> None:
    problem = _problem(axes)
    assert problem.path == ("export", "onnx", "dynamic_axes", *path)
    assert all(word in problem.message for word in words), problem.message


def test_an_unknown_input_gets_a_suggestion() -> None:
    assert _problem("[batch, {imag: [3, h, w]}]").hint == "did you mean 'image'?"


def test_the_old_lists_and_the_new_mappings_validate() -> None:
    assert dlspec.loads(IMAGE.replace("AXES", "[batch]")).export.onnx.dynamic_axes == ["batch"]
    spec = dlspec.loads(IMAGE.replace("AXES", "[batch, {image: [3, height, width]}]"))
    assert spec.export.onnx.dynamic_axes == ["batch", {"image": [3, "height", "width"]}]


def test_height_and_width_vary_in_onnx_and_verify_at_other_sizes(tmp_path: Path) -> None:
    spec = dlspec.loads(IMAGE.replace("AXES", "[batch, {image: [3, height, width]}]"))
    (result,) = dlspec.export_spec(spec, tmp_path / "image.onnx")
    model = onnx.load(str(result.path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    compared = {(c.sizes["height"], c.sizes["width"]) for c in result.comparisons}
    assert len(compared) >= 3 and all(c.passed for c in result.comparisons)
    assert all(h != 20 and w != 16 for h, w in compared)  # never the traced sizes
    assert max(max(pair) for pair in compared) > 64
    assert "(height " in result.lines()[3] and "width " in result.lines()[3]
    # size 1 is refused by the 3×3 kernel: said, not tried
    assert any(n.startswith("height not compared at 1:") and "kernel_size 3" in n
               for n in result.notes)
    torch.manual_seed(spec.train.seed)
    module = compile_graph(dlspec.shapes(spec)["image"]).eval()
    x = torch.randn(2, 3, 41, 29)
    (got,) = ort.InferenceSession(str(result.path)).run(None, {"image": x.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(got, module(x).numpy(), atol=1e-5)


def test_an_axis_the_network_cannot_vary_is_refused_with_the_reason(tmp_path: Path) -> None:
    flat = IMAGE.replace("  - {adaptive_avgpool2d: 1}\n", "").replace(
        "AXES", "[batch, {image: [3, 20, width]}]")
    with pytest.raises(dlspec.SpecError) as refused:
        dlspec.export_spec(dlspec.loads(flat), tmp_path / "flat.onnx")
    (problem,) = refused.value.problems
    assert problem.path == ("export", "onnx", "dynamic_axes")
    assert "width (axis 3 of image) cannot vary" in problem.message
    assert "built for the spec's sizes" in problem.message  # linear's in_features
    assert not (tmp_path / "flat.onnx").exists()


CONV = """\
dlspec: 1
name: conv
inputs:
  x: {shape: [12, 4]}
network:
  - {permute: [0, 2, 1]}
  - {conv1d: {out_channels: 3, kernel_size: 7}}
export: {onnx: {dynamic_axes: [batch, seq]}}
"""


def test_lengths_the_network_cannot_take_are_not_tried(tmp_path: Path) -> None:
    # a kernel of 7 takes no length below 7: once, both sides failed at length 1 and the
    # export was reported as differing from PyTorch
    (result,) = dlspec.export_spec(dlspec.loads(CONV), tmp_path / "conv.onnx")
    assert all(c.passed for c in result.comparisons)
    assert {c.sequence for c in result.comparisons} == {13, 67}
    assert any(note.startswith("seq not compared at 1, 5, 6:") for note in result.notes)
    assert "× seq 13, 67" in result.lines()[3]
    # the output length follows the input's (minus 6): an axis of its own name
    dims = [d.dim_param or d.dim_value
            for d in onnx.load(str(result.path)).graph.output[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[1] == 3 and isinstance(dims[2], str)


POSITIONS = """\
dlspec: 1
name: positions
inputs:
  tokens: {shape: [16], dtype: int64}
network:
  - {embedding: {num_embeddings: 20, embedding_dim: 8}}
  - {positional_encoding: {type: learned, max_len: 40}}
  - {linear: 4}
export: {onnx: {dynamic_axes: [batch, seq]}}
"""


def test_a_maximum_length_is_verified_at_and_the_next_length_said(tmp_path: Path) -> None:
    (result,) = dlspec.export_spec(dlspec.loads(POSITIONS), tmp_path / "p.onnx")
    assert {c.sequence for c in result.comparisons} == {1, 5, 13, 40}
    (note,) = [n for n in result.notes if n.startswith("seq not compared")]
    assert note.startswith("seq not compared at 41:") and "more than max_len 40" in note


def test_a_fixed_batch_is_one_and_verified_at_one(tmp_path: Path) -> None:
    (result,) = dlspec.export_spec(dlspec.loads(POSITIONS.replace("[batch, seq]", "[seq]")),
                                   tmp_path / "p.onnx")
    assert result.inputs[0].shape == [1, None]
    assert {c.batch for c in result.comparisons} == {1}
    assert result.lines()[3].split(" at ")[1].startswith("batch 1 × seq")


@pytest.mark.slow  # ~10 s: tracing the BiLSTM
def test_a_tagger_output_follows_the_dynamic_length_without_runtime_warnings(
        tmp_path: Path) -> None:
    # the exporter froze the BiLSTM's output length at the traced one: ONNX Runtime then
    # warned on every call at another length
    spec = dlspec.load(SPECS / "bilstm_tagger.yaml", overrides=["export.onnx.dynamic_axes="
                                                                "[batch, seq]"])
    (result,) = dlspec.export_spec(spec, tmp_path / "tagger.onnx")
    output = onnx.load(str(result.path)).graph.output[0]
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", 6]
    tokens = "{'tokens': np.ones((3, 30), dtype=np.int64)}"
    run = (f"import numpy as np, onnxruntime as ort; s = ort.InferenceSession("
           f"{str(result.path)!r}); print(s.run(None, {tokens})[0].shape)")
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "(3, 30, 6)"
    assert "Expected shape" not in done.stderr and "does not match" not in done.stderr
