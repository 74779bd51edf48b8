"""dlspec.runtime: ONNX models built with onnx.helper (no torch), predicted with onnxruntime."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from dlspec.errors import DlspecError, SpecError
from dlspec.runtime import Predictor, read_inputs
from dlspec.runtime.command import add_parser
from dlspec.runtime.writers import prediction_table, to_csv, to_json

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
helper, numpy_helper, TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto

LABELS = ["cat", "dog", "eel"]
RNG = np.random.default_rng(0)
WEIGHT = RNG.standard_normal((64, 3)).astype(np.float32)
BIAS = RNG.standard_normal(3).astype(np.float32)

# --------------------------------------------------------------------------- model builders


def tensor(name: str, shape: list[Any], dtype: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, dtype, shape)


def save(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any],
         weights: dict[str, np.ndarray] | None = None,
         metadata: dict[str, Any] | None = None) -> Path:
    """An ONNX model (opset 17) with `metadata` JSON-encoded into metadata_props."""
    initializers = [numpy_helper.from_array(a, n) for n, a in (weights or {}).items()]
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    if metadata:
        helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v)
                                       for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def contract(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
             **extra: Any) -> dict[str, Any]:
    """Metadata as the exporter writes it (dlspec_<key> for every extra)."""
    return {"dlspec_version": "0.1.0", "dlspec_spec": "tiny", "dlspec_spec_sha256": "ab" * 32,
            "dlspec_network": "tiny", "dlspec_inputs": inputs, "dlspec_outputs": outputs,
            **{f"dlspec_{k}": v for k, v in extra.items()}}


def classifier(path: Path, **extra: Any) -> Path:
    """Flatten + Gemm on 1×8×8 images → 3 logits, with the full dlspec metadata."""
    meta = dict(task={"type": "classification", "labels": LABELS, "binary": False},
                normalization={"image": {"mean": [0.5], "std": [0.25]}},
                images={"image": {"channels": 1, "size": [8, 8]}})
    meta.update(extra)
    return save(path, [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
                       helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
                [tensor("image", ["batch", 1, 8, 8])], [tensor("logits", ["batch", 3])],
                {"w": WEIGHT, "b": BIAS},
                contract([{"name": "image", "shape": [None, 1, 8, 8], "dtype": "float32"}],
                         [{"name": "logits", "shape": [None, 3]}], **meta))


def reference(x: np.ndarray) -> np.ndarray:
    return ((x - 0.5) / 0.25).reshape(len(x), 64) @ WEIGHT + BIAS


def identity(path: Path, shape: list[Any], dtype: int = TensorProto.FLOAT,
             metadata: dict[str, Any] | None = None, name: str = "x") -> Path:
    return save(path, [helper.make_node("Identity", [name], ["y"])],
                [tensor(name, shape, dtype)], [tensor("y", shape, dtype)], metadata=metadata)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return classifier(tmp_path / "classifier.onnx")


def images(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 1, 8, 8), dtype=np.float32)


# --------------------------------------------------------------------------- Predictor


def test_predictions_match_numpy_with_normalisation_and_batches(model: Path) -> None:
    predictor = Predictor(model)
    x = images(21)
    out = predictor.predict(x, batch_size=4)
    assert list(out) == ["logits"] and out["logits"].shape == (21, 3)
    np.testing.assert_allclose(out["logits"], reference(x), rtol=1e-5, atol=1e-5)
    raw = predictor.predict({"image": x}, normalize=False)["logits"]
    np.testing.assert_allclose(raw, x.reshape(21, 64) @ WEIGHT + BIAS, rtol=1e-5, atol=1e-5)


def test_classify_gives_indices_labels_and_softmax(model: Path) -> None:
    predictor = Predictor(model)
    assert predictor.is_classifier and predictor.labels == LABELS
    assert predictor.task is not None and predictor.task.type == "classification"
    assert [(i.name, i.shape, i.dtype) for i in predictor.inputs] == [
        ("image", (None, 1, 8, 8), "float32")]
    assert [(o.name, o.shape) for o in predictor.outputs] == [("logits", (None, 3))]
    x = images(6)
    result = predictor.classify(x)
    logits = reference(x)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
    assert result.indices.tolist() == logits.argmax(axis=1).tolist()
    assert result.classes == [LABELS[i] for i in logits.argmax(axis=1)]
    np.testing.assert_allclose(result.confidence, expected.max(axis=1), rtol=1e-5)


def test_binary_classifier_uses_sigmoid_and_threshold(tmp_path: Path) -> None:
    weight = np.array([[1.0], [-1.0]], dtype=np.float32)
    path = save(tmp_path / "binary.onnx",
                [helper.make_node("Gemm", ["x", "w", "b"], ["logit"])],
                [tensor("x", ["n", 2])], [tensor("logit", ["n", 1])],
                {"w": weight, "b": np.zeros(1, np.float32)},
                contract([{"name": "x", "shape": [None, 2], "dtype": "float32"}],
                         [{"name": "logit", "shape": [None, 1]}],
                         task={"type": "classification", "labels": ["no", "yes"],
                               "binary": True, "threshold": 0.7}))
    predictor = Predictor(path)
    assert predictor.labels == ["no", "yes"]
    x = np.array([[2.0, 0.0], [0.5, 0.0], [-3.0, 0.0]], dtype=np.float32)
    result = predictor.classify(x)
    yes = 1 / (1 + np.exp(-x[:, 0]))
    np.testing.assert_allclose(result.probabilities[:, 1], yes, rtol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert result.classes == ["yes", "no", "no"]  # sigmoid(0.5) = 0.62 is below 0.7


def two_outputs(path: Path) -> Path:
    w1, w2 = np.arange(8, dtype=np.float32).reshape(4, 2), np.ones((4, 1), np.float32)
    return save(path, [helper.make_node("MatMul", ["x", "w1"], ["a"]),
                       helper.make_node("MatMul", ["x", "w2"], ["b"])],
                [tensor("x", ["n", 4])], [tensor("a", ["n", 2]), tensor("b", ["n", 1])],
                {"w1": w1, "w2": w2},
                contract([{"name": "x", "shape": [None, 4], "dtype": "float32"}],
                         [{"name": "a", "shape": [None, 2]}, {"name": "b", "shape": [None, 1]}],
                         task={"type": "regression", "labels": None, "binary": False}))


def test_two_outputs_and_their_table(tmp_path: Path) -> None:
    predictor = Predictor(two_outputs(tmp_path / "two.onnx"))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = predictor.predict(x)
    np.testing.assert_allclose(out["a"], x @ np.arange(8).reshape(4, 2))
    np.testing.assert_allclose(out["b"][:, 0], x.sum(axis=1))
    assert not predictor.is_classifier and predictor.labels is None
    table = prediction_table(predictor, out)
    assert list(table.columns) == ["sample", "a_0", "a_1", "b"]
    assert to_csv(table).splitlines()[1] == "0,28.0,34.0,6.0"


def test_model_without_metadata_runs_on_its_own_names(tmp_path: Path) -> None:
    path = save(tmp_path / "foreign.onnx", [helper.make_node("Relu", ["input.1"], ["out"])],
                [tensor("input.1", ["batch_size", 3])], [tensor("out", ["batch_size", 3])])
    predictor = Predictor(path)
    assert predictor.task is None and predictor.labels is None and not predictor.is_classifier
    assert predictor.inputs[0].shape == (None, 3) and predictor.inputs[0].dtype == "float32"
    x = np.array([[-1.0, 0.5, 2.0]], dtype=np.float64)  # float64 is cast, not refused
    np.testing.assert_array_equal(predictor.predict(x)["out"], [[0.0, 0.5, 2.0]])
    table = prediction_table(predictor, predictor.predict(x))
    assert list(table.columns) == ["sample", "out_0", "out_1", "out_2"]


def test_fixed_batch_model_is_fed_padded_batches(tmp_path: Path) -> None:
    path = save(tmp_path / "fixed.onnx", [helper.make_node("Neg", ["x"], ["y"])],
                [tensor("x", [1, 3])], [tensor("y", [1, 3])])
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(Predictor(path).predict(x, batch_size=64)["y"], -x)


def test_normalisation_per_channel_of_images_and_per_feature_of_sequences(
        tmp_path: Path) -> None:
    stats = {"x": {"mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 4.0]}}
    image = identity(tmp_path / "image.onnx", ["n", 3, 4, 4],
                     metadata=contract([{"name": "x", "shape": [None, 3, 4, 4]}],
                                       [{"name": "y", "shape": [None, 3, 4, 4]}],
                                       normalization=stats))
    x = RNG.random((2, 3, 4, 4), dtype=np.float32)
    mean, std = np.array([0.1, 0.2, 0.3])[:, None, None], np.array([1.0, 2.0, 4.0])[:, None, None]
    np.testing.assert_allclose(Predictor(image).predict(x)["y"], (x - mean) / std, rtol=1e-6,
                               atol=1e-6)
    stats = {"x": {"mean": [1.0, 2.0], "std": [2.0, 4.0]}}
    sequence = identity(tmp_path / "sequence.onnx", ["n", "t", 2],
                        metadata=contract([{"name": "x", "shape": [None, None, 2]}],
                                          [{"name": "y", "shape": [None, None, 2]}],
                                          normalization=stats))
    steps = RNG.random((2, 7, 2), dtype=np.float32)
    np.testing.assert_allclose(Predictor(sequence).predict(steps)["y"],
                               (steps - [1.0, 2.0]) / [2.0, 4.0], rtol=1e-6, atol=1e-6)


def test_wrong_shape_names_input_expected_and_given(model: Path) -> None:
    predictor = Predictor(model)
    with pytest.raises(SpecError) as caught:
        predictor.predict(np.zeros((5, 3, 8, 8), np.float32))
    assert str(caught.value) == (
        "image: expected 1×8×8 float32 per sample, got 3×8×8 float32 (an array of shape "
        "5×3×8×8); give an array of shape (N, 1, 8, 8)")
    with pytest.raises(SpecError, match=r"got 8×8 float32 .*add the batch axis: array\[None\]"):
        predictor.predict(np.zeros((1, 8, 8), np.float32))


def test_wrong_dtype_names_input_expected_and_given(tmp_path: Path, model: Path) -> None:
    tokens = save(tmp_path / "tokens.onnx",
                  [helper.make_node("Cast", ["tokens"], ["y"], to=TensorProto.FLOAT)],
                  [tensor("tokens", ["n", 5], TensorProto.INT64)], [tensor("y", ["n", 5])])
    predictor = Predictor(tokens)
    assert predictor.inputs[0].dtype == "int64"
    np.testing.assert_array_equal(predictor.predict(np.ones((2, 5), np.int32))["y"], 1.0)
    with pytest.raises(SpecError) as caught:
        predictor.predict(np.ones((2, 5), np.float32))
    assert str(caught.value).startswith("tokens: expected 5 int64 per sample, got 5 float32 "
                                        "(an array of shape 2×5); the model takes whole numbers")
    with pytest.raises(SpecError, match="image: expected 1×8×8 float32 per sample, got "
                                        "1×8×8 <U1"):
        Predictor(model).predict(np.full((2, 1, 8, 8), "a"))


def test_input_mapping_is_checked(tmp_path: Path, model: Path) -> None:
    predictor = Predictor(model)
    with pytest.raises(SpecError, match=r"imgae: the model has no such input; did you mean "
                                        r"'image'\?"):
        predictor.predict({"imgae": images(1)})
    path = save(tmp_path / "two_inputs.onnx", [helper.make_node("Concat", ["a", "b"], ["y"],
                                                                axis=1)],
                [tensor("a", ["n", 2]), tensor("b", ["n", 3])], [tensor("y", ["n", 5])])
    two = Predictor(path)
    with pytest.raises(SpecError, match="b: no array given"):
        two.predict({"a": np.zeros((2, 2))})
    with pytest.raises(SpecError, match="different numbers of samples: a 2, b 3"):
        two.predict({"a": np.zeros((2, 2)), "b": np.zeros((3, 3))})
    with pytest.raises(SpecError, match="the model has 2 inputs"):
        two.predict(np.zeros((2, 2)))


def test_providers_and_threads(model: Path) -> None:
    import onnxruntime

    predictor = Predictor(model, "auto", threads=1)
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert predictor.provider == "CPUExecutionProvider"
        with pytest.raises(SpecError, match="provider cuda was asked for"):
            Predictor(model, "cuda")
    assert predictor.session.get_session_options().intra_op_num_threads == 1
    assert Predictor(model, ["CPUExecutionProvider"]).provider == "CPUExecutionProvider"
    assert Predictor(model, "cpu").provider == "CPUExecutionProvider"
    with pytest.raises(SpecError, match="did you mean 'cpu'"):
        Predictor(model, "cpux")


def test_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found; export one with `dlspec export SPEC`"):
        Predictor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    with pytest.raises(SpecError, match="is not an ONNX model"):
        Predictor(tmp_path / "junk.onnx")
    bad = classifier(tmp_path / "bad.onnx", task="{not json")
    with pytest.raises(SpecError, match="metadata dlspec_task is not valid JSON"):
        Predictor(bad)
    wrong = classifier(tmp_path / "wrong.onnx", task={"type": "classification",
                                                      "labels": ["a", "b"], "binary": False})
    with pytest.raises(SpecError, match="has 2 labels but output logits gives 3 logits"):
        Predictor(wrong)
    run = tmp_path / "run"
    run.mkdir()
    classifier(run / "model.onnx")
    assert Predictor(run).path == run / "model.onnx"


# --------------------------------------------------------------------------- readers


def test_npy_and_npz_inputs(tmp_path: Path, model: Path) -> None:
    predictor = Predictor(model)
    x = images(3)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "named.npz", image=x, labels=np.arange(3))
    np.savez(tmp_path / "single.npz", anything=x)
    np.savez(tmp_path / "xy.npz", x=x, y=np.arange(3))
    for name in ("x.npy", "named.npz", "single.npz"):
        samples = read_inputs(tmp_path / name, predictor.inputs, predictor.metadata.images)
        assert len(samples) == 3 and samples.names is None
        np.testing.assert_array_equal(samples.arrays["image"], x)
    with pytest.raises(SpecError, match=r"xy.npz has no array named 'image' \(it holds 'x', 'y'\); "
                                        r"name each array after the model's input"):
        read_inputs(tmp_path / "xy.npz", predictor.inputs, {})


def test_csv_with_and_without_header(tmp_path: Path, model: Path) -> None:
    predictor = Predictor(model)
    x = np.round(images(4), 3)
    rows = "\n".join(",".join(str(v) for v in sample.ravel()) for sample in x)
    header = ",".join(f"pixel{i}" for i in range(64))
    (tmp_path / "plain.csv").write_text(rows + "\n")
    (tmp_path / "header.csv").write_text(header + "\n" + rows + "\n\n")
    for name in ("plain.csv", "header.csv"):
        samples = read_inputs(tmp_path / name, predictor.inputs, {})
        np.testing.assert_allclose(samples.arrays["image"], x, rtol=1e-6)
        np.testing.assert_allclose(predictor.predict(samples.arrays)["logits"], reference(x),
                                   rtol=1e-4, atol=1e-4)


def test_csv_errors_name_row_and_column(tmp_path: Path, model: Path) -> None:
    predictor = Predictor(model)
    header = ",".join(f"p{i}" for i in range(64))
    good = ",".join(["0.5"] * 64)
    bad = ",".join(["0.5"] * 10 + ["abc"] + ["0.5"] * 53)
    (tmp_path / "bad.csv").write_text(f"{header}\n{good}\n{bad}\n")
    with pytest.raises(SpecError) as caught:
        read_inputs(tmp_path / "bad.csv", predictor.inputs, {})
    assert str(caught.value) == (f"{tmp_path / 'bad.csv'}:3: column 11 ('p10') 'abc' is not a "
                                 "number; every value must be a number; a header row is allowed")
    (tmp_path / "wide.csv").write_text(f"{good},7\n")
    with pytest.raises(SpecError, match="has 65 columns, but input image takes 64 values per "
                                        "sample"):
        read_inputs(tmp_path / "wide.csv", predictor.inputs, {})
    (tmp_path / "ragged.csv").write_text(f"{good}\n0.5\n")
    with pytest.raises(SpecError, match=r"ragged.csv:2: 1 values, but the first row has 64"):
        read_inputs(tmp_path / "ragged.csv", predictor.inputs, {})


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_image_folder_predictions(tmp_path: Path, model: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    for name, image in zip(["b.png", "a.png", "sub/c.png"], pixels, strict=True):
        write_png(tmp_path / "images" / name, image)
    write_png(tmp_path / "images" / ".hidden" / "d.png", pixels[0])
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    predictor = Predictor(model)
    samples = read_inputs(tmp_path / "images", predictor.inputs, predictor.metadata.images)
    assert samples.names == ["a.png", "b.png", "sub/c.png"]
    x = pixels[[1, 0, 2]][:, None].astype(np.float32) / 255
    np.testing.assert_allclose(samples.arrays["image"], x)
    result = predictor.classify(samples.arrays)
    assert result.indices.tolist() == reference(x).argmax(axis=1).tolist()


def test_image_folder_is_resized_and_converted_as_in_training(tmp_path: Path,
                                                              model: Path) -> None:
    colour = np.random.default_rng(3).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    write_png(tmp_path / "big" / "one.png", colour)
    predictor = Predictor(model)
    samples = read_inputs(tmp_path / "big", predictor.inputs, predictor.metadata.images)
    expected = Image.fromarray(colour).convert("L").resize((8, 8), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(samples.arrays["image"][0, 0],
                               np.asarray(expected, np.float32) / 255)


def test_image_folder_without_metadata_uses_a_fixed_chw_shape(tmp_path: Path) -> None:
    foreign = identity(tmp_path / "chw.onnx", ["n", 3, 4, 5])
    write_png(tmp_path / "rgb" / "x.png", np.zeros((9, 9, 3), np.uint8))
    predictor = Predictor(foreign)
    samples = read_inputs(tmp_path / "rgb", predictor.inputs, predictor.metadata.images)
    assert samples.arrays["x"].shape == (1, 3, 4, 5)
    table = identity(tmp_path / "table.onnx", ["n", 4])
    with pytest.raises(SpecError, match="does not say how to load images for input x"):
        read_inputs(tmp_path / "rgb", Predictor(table).inputs, {})


def test_input_path_errors(tmp_path: Path, model: Path) -> None:
    inputs = Predictor(model).inputs
    with pytest.raises(SpecError, match="input not found: .*; give an .npy, .npz or .csv"):
        read_inputs(tmp_path / "nope.npy", inputs, {})
    (tmp_path / "data.parquet").write_bytes(b"x")
    with pytest.raises(SpecError, match=r"cannot read .parquet files; give an .npy"):
        read_inputs(tmp_path / "data.parquet", inputs, {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"empty holds no images; expected files ending in "):
        read_inputs(tmp_path / "empty", inputs, {"image": Predictor(model).metadata.images[
            "image"]})


# --------------------------------------------------------------------------- writers and CLI


def predict_cli(*argv: Any) -> int:
    """`dlspec predict ...` through an argparse harness shaped like dlspec.cli."""
    parser = argparse.ArgumentParser(prog="dlspec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["predict", *map(str, argv)])
    try:
        return int(args.run(args))
    except DlspecError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code


def digits_folder(folder: Path) -> np.ndarray:
    pixels = np.random.default_rng(4).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    for i, image in enumerate(pixels):
        write_png(folder / f"{i}.png", image)
    return pixels[:, None].astype(np.float32) / 255


def test_cli_writes_classifier_csv_to_stdout(tmp_path: Path, model: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    x = digits_folder(tmp_path / "digits")
    assert predict_cli(model, tmp_path / "digits", "--threads", "1", "--batch-size", "3") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "sample,class,probability,p_cat,p_dog,p_eel"
    assert len(lines) == 5 and lines[1].startswith("0.png,")
    expected = [LABELS[i] for i in reference(x).argmax(axis=1)]
    assert [line.split(",")[1] for line in lines[1:]] == expected
    assert captured.err.startswith("predicted 4 samples with classifier.onnx on "
                                   "CPUExecutionProvider in ")
    assert captured.err.count("\n") == 1


def test_cli_writes_json_and_csv_files(tmp_path: Path, model: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    x = images(3)
    np.save(tmp_path / "x.npy", x)
    assert predict_cli(model, tmp_path / "x.npy", "-o", tmp_path / "out" / "p.json") == 0
    assert capsys.readouterr().err.rstrip().endswith(f"wrote {tmp_path / 'out' / 'p.json'}")
    records = json.loads((tmp_path / "out" / "p.json").read_text())
    assert [r["sample"] for r in records] == [0, 1, 2]
    assert set(records[0]) == {"sample", "class", "probability", "p_cat", "p_dog", "p_eel"}
    assert records[0]["probability"] == max(records[0][f"p_{k}"] for k in LABELS)
    assert predict_cli(model, tmp_path / "x.npy", "-o", tmp_path / "p.csv") == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("sample,class,")


def test_cli_errors_exit_2_with_one_message(tmp_path: Path, model: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", images(2))
    assert predict_cli(model, tmp_path / "x.npy", "-o", tmp_path / "p.xlsx") == 2
    assert ("unknown extension .xlsx; name the output file .csv, .json, .npy or .npz"
            in capsys.readouterr().err)
    assert predict_cli(tmp_path / "none.onnx", tmp_path / "x.npy") == 2
    np.save(tmp_path / "bad.npy", np.zeros((2, 8, 8), np.float32))
    assert predict_cli(model, tmp_path / "bad.npy") == 2
    assert capsys.readouterr().err.count("image: expected 1×8×8 float32 per sample") == 1


def test_json_writes_nan_as_null() -> None:
    from dlspec.runtime.writers import Table

    text = to_json(Table({"sample": [0], "y": [float("nan")]}))
    assert json.loads(text) == [{"sample": 0, "y": None}]


# --------------------------------------------------------------------------- no torch


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def torch_modules(importtime: str) -> list[str]:
    names = [line.rsplit("|", 1)[-1].strip() for line in importtime.splitlines()
             if line.startswith("import time:")]
    return [n for n in names if n == "torch" or n.startswith("torch.")]


def test_predictor_imports_no_torch(model: Path) -> None:
    code = ("import sys, numpy as np\nfrom dlspec.runtime import Predictor\n"
            f"p = Predictor({str(model)!r})\n"
            "print(p.classify(np.zeros((2, 1, 8, 8), np.float32)).classes)\n"
            "assert 'torch' not in sys.modules\n")
    result = run_python("-X", "importtime", "-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch_modules(result.stderr) == []


def test_predict_imports_nothing_of_training_or_the_spec_compiler(tmp_path: Path,
                                                                  model: Path) -> None:
    digits_folder(tmp_path / "digits")
    result = run_python("-X", "importtime", "-m", "dlspec", "predict", str(model),
                        str(tmp_path / "digits"), "-o", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads((tmp_path / "p.json").read_text())) == 4
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    heavy = ("torch", "pydantic", "onnx", "dlspec.graph", "dlspec.compile", "dlspec.layers",
             "dlspec.train", "dlspec.data", "dlspec.spec", "dlspec.api", "dlspec.export")
    assert [m for m in imported if m in heavy or m.startswith(tuple(h + "." for h in heavy))
            ] == []


def test_dlspec_predict_command(tmp_path: Path, model: Path) -> None:
    """The real CLI in a subprocess."""
    digits_folder(tmp_path / "digits")
    result = run_python("-X", "importtime", "-m", "dlspec", "predict", str(model),
                        str(tmp_path / "digits"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch_modules(result.stderr) == []
    assert result.stdout.splitlines()[0] == "sample,class,probability,p_cat,p_dog,p_eel"
    assert len(result.stdout.splitlines()) == 5
    assert "predicted 4 samples with classifier.onnx on CPUExecutionProvider" in result.stderr
    bad = run_python("-m", "dlspec", "predict", str(model), str(tmp_path / "none.npz"))
    assert bad.returncode == 2 and bad.stderr.startswith("input not found: ")
