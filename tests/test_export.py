"""ONNX export: every spec exports and verifies; the file carries what deployment needs;
failures are clear (exit 2 for bad input, 1 for a failed verification)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from safetensors.torch import save_file

import dlspec
from conftest import ROOT, SPECS
from dlspec.layers.registry import lookup_kind
from test_layer_kinds import EXAMPLES

# parameter-heavy networks: seconds each to trace, serialise and run at batch 7
_LARGE = {"alexnet", "vgg16", "vgg19", "resnet34", "resnet50", "resnet152", "cyclegan"}
# the slowest specs export at a smaller input (the same layers, the same weights): at full
# size they took 20-100 s each here. The big image models convolve 224×224 or 256×256 images
# at batch 1, 2 and 7 in PyTorch and in ONNX Runtime (most of cyclegan's time, a quarter of
# the others'); full-size exports of the same layer kinds stay covered by alexnet and
# resnet18/34/50 (both uses of adaptive pooling), the full-size forward pass by
# test_specs.py::test_big_model_runs_on_cpu, the published parameter counts by test_specs.py.
# Tracing the GRU takes time with the example's length: gru's 30-step window is 10 steps
# here, still none of the lengths the dynamic sequence axis is verified at (1, 5, 13).
_SMALLER = {"vgg16": ["params.size=32"], "vgg19": ["params.size=32"],
            "resnet152": ["params.size=64"], "cyclegan": ["params.size=32"],
            "gru": ["inputs.window.shape=[10, 1]"],
            "mobilenet_v2": ["params.size=64"], "efficientnet_b0": ["params.size=64"],
            "shufflenet_v2": ["params.size=64"], "densenet121": ["params.size=64"],
            "convnext_tiny": ["params.size=32"], "unet": ["params.size=188"]}
# a smaller ViT has another position embedding, so it exports its small variant
_VARIANT = {"vit_b_16": "digits"}
_SEQUENCE_SPECS = {"lstm", "gru", "bilstm", "transformer_encoder"}


def _spec_params() -> list[object]:
    return [pytest.param(path, id=path.stem,
                         marks=[pytest.mark.slow] if path.stem in _LARGE else [])
            for path in sorted(SPECS.glob("*.yaml"))]


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
            .metadata_props}


@pytest.mark.parametrize("spec_path", _spec_params())
def test_every_spec_exports_and_verifies(spec_path: Path, tmp_path: Path) -> None:
    spec = dlspec.load(spec_path, _VARIANT.get(spec_path.stem),
                       overrides=_SMALLER.get(spec_path.stem))
    results = dlspec.export_spec(spec, tmp_path / f"{spec.name}.onnx")
    shaped = dlspec.shapes(spec)
    if spec_path.stem in _SMALLER:  # the smaller input leaves the network's weights as they are
        full = dlspec.shapes(dlspec.load(spec_path))
        assert {k: g.total_params for k, g in shaped.items()} == {
            k: g.total_params for k, g in full.items()}
    for result in results:
        assert result.path.is_file()
        model = onnx.load(str(result.path))  # once: the largest files are 0.5 GB
        network = shaped[{p.key: p.value for p in model.metadata_props}["dlspec_network"]]
        assert all(c.passed for c in result.comparisons)
        assert {c.batch for c in result.comparisons} == {1, 2, 7}
        # the spec's names, and a dynamic batch axis on every input and output
        assert [t.name for t in result.inputs] == list(network.graph.inputs)
        assert [t.name for t in result.outputs] == list(network.graph.outputs)
        assert all(t.shape[0] is None for t in result.inputs + result.outputs)
        onnx.checker.check_model(str(result.path), full_check=True)  # the file as written
        assert len(model.graph.value_info) > 0  # shapes inferred onto the edges
    if spec.name in _SEQUENCE_SPECS:
        (result,) = results
        assert result.inputs[0].shape[1] is None  # the sequence axis is dynamic
        # small lengths, and one past the traced length and past 64
        assert {c.sequence for c in result.comparisons} == {1, 5, 13, 67}
    if spec.name == "dcgan":  # a GAN exports its generator
        assert [_metadata(r.path)["dlspec_network"] for r in results] == ["generator"]


def _one_layer_spec(name: str, index: int) -> str:
    """A spec of one layer of kind `name`, from the layer tests' examples."""
    params, shapes, *rest = EXAMPLES[name][index]
    tokens = rest[0] == torch.int64 if rest else lookup_kind(name).accepts == "int"
    inputs = {f"x{i}": {"shape": list(shape), "dtype": "int64" if tokens else "float32"}
              for i, shape in enumerate(shapes)}
    entry = {name: params, "from": list(inputs) if len(inputs) > 1 else "x0"}
    return yaml.safe_dump({"dlspec": 1, "name": f"{name}_{index}", "inputs": inputs,
                           "network": [entry]})


@pytest.mark.parametrize(("name", "index"), [
    pytest.param(name, i, id=f"{name}-{i}") for name, examples in EXAMPLES.items()
    for i in range(len(examples))])
def test_every_layer_kind_exports_and_verifies(name: str, index: int, tmp_path: Path) -> None:
    # a new kind gets an example in test_layer_kinds (a test insists), so it is covered here
    (result,) = dlspec.export_spec(dlspec.loads(_one_layer_spec(name, index)),
                                   tmp_path / "layer.onnx")
    assert all(c.passed for c in result.comparisons)


def test_the_metadata_says_what_deployment_needs(tmp_path: Path) -> None:
    (result,) = dlspec.export_spec(SPECS / "transformer_encoder.yaml", tmp_path / "t.onnx")
    metadata = _metadata(result.path)
    assert metadata["dlspec_spec"] == "transformer_encoder"
    assert metadata["dlspec_version"] == dlspec.__version__
    assert len(metadata["dlspec_spec_sha256"]) == 64
    assert json.loads(metadata["dlspec_inputs"]) == [
        {"name": "tokens", "shape": [None, None], "dtype": "int64"}]
    assert json.loads(metadata["dlspec_outputs"]) == [
        {"name": "output", "shape": [None, 2], "dtype": "float32"}]
    assert json.loads(metadata["dlspec_task"]) == {
        "type": "sequence_classification", "labels": ["negative", "positive"], "binary": False,
        "output": "output", "threshold": 0.5}
    # the same hash however the spec is laid out
    text = (SPECS / "transformer_encoder.yaml").read_text()
    relaid = dlspec.loads("# another comment\n\n" + text + "\n# the end\n")
    from dlspec.export.metadata import spec_hash

    assert spec_hash(relaid) == metadata["dlspec_spec_sha256"]


TRAPS = """\
dlspec: 1
name: traps
inputs:
  x: {shape: [12, 16]}
network:
  - {name: att, multihead_attention: {num_heads: 4}}
  - {name: enc, transformer_encoder: {num_layers: 1, nhead: 4, dim_feedforward: 32}}
  - {name: bi, lstm: {hidden_size: 8, return: sequence, bidirectional: true, num_layers: 2}}
  - {name: to_channels, permute: [0, 2, 1]}
  - {name: pool, adaptive_avgpool1d: POOL}
  - flatten
  - {linear: 2}
"""


def test_attention_and_bidirectional_stacks_export_with_a_dynamic_sequence(
        tmp_path: Path) -> None:
    # attention's fused fast path and a bidirectional LSTM stack over a dynamic length
    spec = dlspec.loads(TRAPS.replace("POOL", "1"))
    (result,) = dlspec.export_spec(spec, tmp_path / "traps.onnx")
    assert result.inputs[0].shape == [None, None, 16]
    assert all(c.passed for c in result.comparisons)
    assert {c.sequence for c in result.comparisons} == {1, 5, 13, 67}


def test_adaptive_pooling_over_a_dynamic_length_falls_back_to_the_fixed_length(
        tmp_path: Path) -> None:
    # 5 bins over the sequence: the exporter computes the bins for the traced length (12),
    # so other lengths fail in ONNX Runtime; verification catches it
    spec = dlspec.loads(TRAPS.replace("POOL", "5"))
    # asked for explicitly, a dynamic length is refused: by the trace, which freezes the
    # length (exit 2), or by verification (exit 1, the file kept aside) — which of the two
    # depends on what the exporter traced before in the same process
    with pytest.raises((dlspec.SpecError, dlspec.WorkError)) as refused:
        dlspec.export_spec(spec, tmp_path / "asked.onnx", dynamic=["batch", "seq"])
    if isinstance(refused.value, dlspec.WorkError):
        assert "differs from PyTorch" in str(refused.value) and "seq 1" in str(refused.value)
        assert (tmp_path / "asked.failed.onnx").is_file()
    else:
        assert "needs a fixed sequence length" in str(refused.value)
    assert not (tmp_path / "asked.onnx").exists()
    # without dynamic_axes in the spec, the length is dynamic only where that verifies
    (result,) = dlspec.export_spec(spec, tmp_path / "traps.onnx")
    assert result.inputs[0].shape == [None, 12, 16]
    assert any(note.startswith("sequence length fixed (x 12):") for note in result.notes)
    assert all(c.passed for c in result.comparisons)


def test_an_unrolled_recurrence_keeps_its_length_and_says_so(tmp_path: Path) -> None:
    (result,) = dlspec.export_spec(SPECS / "rnn.yaml", tmp_path / "rnn.onnx")
    assert result.inputs[0].shape == [None, 10, 1]
    assert any("sequence length fixed (numbers 10)" in note for note in result.notes)
    with pytest.raises(dlspec.SpecError, match="fixed sequence length"):
        dlspec.export_spec(SPECS / "rnn.yaml", tmp_path / "rnn2.onnx", dynamic=["batch", "seq"])


def test_export_command_is_quiet_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "mlp.onnx"
    result = subprocess.run([sys.executable, "-m", "dlspec", "export", "specs/mlp.yaml", "-o",
                             str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"exported {out} (")
    assert "opset 18" in result.stdout and "x [dynamic, 2] float32" in result.stdout
    assert "verified in ONNX Runtime against PyTorch at batch 1, 2, 7" in result.stdout
    # the exporter's own progress lines and warnings stay hidden
    assert result.stderr.strip() == "note: exported with freshly initialised weights " \
        "(no --checkpoint)"
    assert out.is_file()


def test_a_failed_verification_keeps_the_file_aside_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "lenet5.onnx"
    result = subprocess.run([sys.executable, "-m", "dlspec", "export", "specs/lenet5.yaml",
                             "-o", str(out), "--atol", "0", "--rtol", "0"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "differs from PyTorch beyond tolerance (atol 0, rtol 0) at batch 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and (tmp_path / "lenet5.failed.onnx").is_file()


def test_a_checkpoint_that_does_not_fit_names_the_first_tensor(tmp_path: Path) -> None:
    model = dlspec.compile_spec(SPECS / "mlp.yaml")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["hidden2.weight"] = torch.zeros(8, 16)
    save_file(state, str(tmp_path / "model.safetensors"))
    result = subprocess.run([sys.executable, "-m", "dlspec", "export", "specs/mlp.yaml",
                             "--checkpoint", str(tmp_path), "-o", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "hidden2.weight is (8, 16) there, (16, 16) in the spec" in result.stderr
    del state["hidden2.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(dlspec.SpecError, match="it has no tensor hidden2.weight"):
        dlspec.export_spec(SPECS / "mlp.yaml", tmp_path / "m.onnx", checkpoint=tmp_path)


def test_bad_export_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(dlspec.SpecError, match="no input is a sequence"):
        dlspec.export_spec(SPECS / "mlp.yaml", tmp_path / "m.onnx", dynamic=["batch", "seq"])
    with pytest.raises(dlspec.SpecError, match="opset 9 is not supported"):
        dlspec.export_spec(SPECS / "mlp.yaml", tmp_path / "m.onnx", opset=9)
    result = subprocess.run([sys.executable, "-m", "dlspec", "export", "specs/mlp.yaml",
                             "--dynamic", "batch,time"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "unknown axis 'time'" in result.stderr


def test_a_trained_run_exports_its_weights_labels_and_normalisation(tmp_path: Path) -> None:
    spec = dlspec.loads((SPECS / "mlp.yaml").read_text().replace(
        "split: {train", "normalize: auto, split: {train"), "mlp.yaml")
    trained = dlspec.train_spec(spec, tmp_path / "run", epochs=2)
    (result,) = dlspec.export_spec(spec, checkpoint=tmp_path / "run")
    assert result.path == tmp_path / "run" / "model.onnx"
    metadata = _metadata(result.path)
    assert json.loads(metadata["dlspec_task"])["binary"] is True
    assert json.loads(metadata["dlspec_task"])["labels"] == trained.data.labels
    stats = json.loads(metadata["dlspec_normalization"])["x"]
    assert stats == trained.data.normalization["x"]
    # the file holds the trained weights: it reproduces the trained model's logits
    x = trained.data.test.inputs["x"][:5]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": x.numpy()})
    with torch.inference_mode():
        expected = trained.model.eval()(x).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_predict_runs_the_exported_run_on_raw_inputs_without_torch(tmp_path: Path) -> None:
    spec = dlspec.loads((SPECS / "mlp.yaml").read_text().replace(
        "split: {train", "normalize: auto, split: {train"), "mlp.yaml")
    trained = dlspec.train_spec(spec, tmp_path / "run", epochs=3)
    dlspec.export_spec(spec, checkpoint=tmp_path / "run", optimize=True)
    stats = trained.data.normalization["x"]
    normalised = trained.data.test.inputs["x"]
    raw = normalised * torch.tensor(stats["std"]) + torch.tensor(stats["mean"])
    np.save(tmp_path / "raw.npy", raw.numpy())
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlspec", "predict",
                             str(tmp_path / "run"), str(tmp_path / "raw.npy"), "-o",
                             str(tmp_path / "out.csv")], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert " torch" not in result.stderr  # -X importtime lists every module imported
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0].startswith("sample,class,probability")
    with torch.inference_mode():
        logits = trained.model.eval()(normalised).reshape(-1)
    expected = [str(int(v > 0)) for v in logits]  # moons has no class names
    assert [row.split(",")[1] for row in rows[1:]] == expected
