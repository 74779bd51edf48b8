"""Files nobody vouches for, read as training data and by `dlspec predict`: other files' text
is never echoed, CSV cells never run as formulas, NaN is refused, headers and images are
checked before anything is allocated or decoded, outputs stay where they were asked to go."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_data import load, spec_error
from test_runtime import classifier, contract, helper, predict_cli, run_python, save, tensor

from conftest import ROOT  # noqa: F401  (tests/ on sys.path for the helpers below)
from dlspec.errors import SpecError
from dlspec.runtime import Predictor, read_inputs
from dlspec.runtime.masks import write_masks
from dlspec.runtime.untrusted import (
    MAX_IMAGE_PIXELS,
    Unreadable,
    excerpt,
    load_array,
    read_image,
)
from dlspec.runtime.writers import Table, image_paths, safe_cell, to_csv, to_json

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")


# --------------------------------------------------------------------------- messages


def test_excerpt_is_short_escaped_and_quoted() -> None:
    assert excerpt("plain") == "'plain'"
    assert excerpt("a\x1b[2Jb\u202ec") == "'a\\\\x1b[2Jb\\\\u202ec'"
    assert excerpt("x" * 100) == "'" + "x" * 24 + "…'"


def test_csv_of_another_kind_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "passwd.csv").write_text(PASSWD)
    path, text = spec_error(load, {"csv": "passwd.csv", "target": "zzz", "delimiter": "|"},
                            (2,), base_dir=tmp_path)
    assert path == ("data", "csv") and "root:" not in text
    assert "passwd.csv is not a CSV file with delimiter '|'" in text
    path, text = spec_error(load, {"csv": "passwd.csv", "target": "zzz", "delimiter": ":"},
                            (2,), base_dir=tmp_path)
    assert "root:x:0:0" not in text and "/bin/bash" not in text


def test_missing_column_lists_a_few_escaped_names(tmp_path: Path) -> None:
    names = [f"feature_{i}_{'long' * 10}" for i in range(20)] + ["evil\u202ename", "y"]
    rows = ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"
    (tmp_path / "wide.csv").write_text(rows * 1)
    _, text = spec_error(load, {"csv": "wide.csv", "target": "zzz"}, (21,), base_dir=tmp_path)
    assert "and 16 more" in text and "long" * 10 not in text and "\u202e" not in text


@pytest.mark.parametrize(("content", "said"), [
    (bytes(range(256)) * 8, "not UTF-8 text"),
    (b"a,b\n1,\x1b[2J\n", "binary: control character 0x1b on line 2"),
    (b"a,b\n\x00,1\n", "binary: control character 0x00 on line 2"),
])
def test_binary_csv_is_not_a_csv_file(tmp_path: Path, content: bytes, said: str) -> None:
    (tmp_path / "d.csv").write_bytes(content)
    path, text = spec_error(load, {"csv": "d.csv"}, (1,), base_dir=tmp_path)
    assert path == ("data", "csv") and f"d.csv is not a CSV file ({said}" in text
    assert "\x1b" not in text and "\x00" not in text


def test_class_names_with_hidden_characters_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,cat\n2,d\u202eog\n")
    path, text = spec_error(load, {"csv": "d.csv"}, (1,), "classification", base_dir=tmp_path)
    assert path == ("data", "target") and "row 3" in text and "\u202e" not in text
    folder = tmp_path / "images" / "ca\u202et"
    folder.mkdir(parents=True)
    Image.new("L", (4, 4)).save(folder / "1.png")
    path, text = spec_error(load, {"image_folder": "images"}, (1, 4, 4), base_dir=tmp_path)
    assert path == ("data", "image_folder") and "\\u202e" in text and "\u202e" not in text


# --------------------------------------------------------------------------- NaN


@pytest.mark.parametrize(("cell", "row"), [("nan", 4), ("inf", 4), ("-Infinity", 4),
                                           ("1e39", 4)])
def test_nan_and_infinite_targets_and_features_are_refused(tmp_path: Path, cell: str,
                                                           row: int) -> None:
    (tmp_path / "t.csv").write_text(f"a,y\n1,0.5\n2,0.5\n3,{cell}\n")
    path, text = spec_error(load, {"csv": "t.csv"}, (1,), "regression", base_dir=tmp_path)
    assert path == ("data", "target") and f"column 'y' of t.csv holds {cell!r} in row {row}" \
        in text
    (tmp_path / "f.csv").write_text(f"a,y\n1,0.5\n{cell},0.5\n")
    path, text = spec_error(load, {"csv": "f.csv"}, (1,), "regression", base_dir=tmp_path)
    assert path == ("data", "csv") and "in row 3" in text


def test_nan_in_npz_names_the_array_and_sample(tmp_path: Path) -> None:
    y = np.zeros(4, np.float32)
    y[2] = np.inf
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2), np.float32), y=y)
    path, text = spec_error(load, {"npz": "d.npz"}, (2,), "regression", base_dir=tmp_path)
    assert path == ("data", "y_key") and "array 'y' holds NaN or infinite values, first in " \
        "sample 2" in text


# --------------------------------------------------------------------------- arrays


def huge_npy(shape: tuple[int, ...] = (100_000, 1_000_000), descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + b"\0" * 16


def npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def test_array_headers_are_checked_before_reading(tmp_path: Path) -> None:
    (tmp_path / "big.npy").write_bytes(huge_npy())
    with pytest.raises(Unreadable, match=r"announces 100000×1000000 float32 values "
                                         r"\(373 GiB\) but holds 16 bytes"):
        load_array(tmp_path / "big.npy")
    (tmp_path / "big.npz").write_bytes(npz({"x": huge_npy()}))
    with pytest.raises(Unreadable, match="array 'x' announces 100000×1000000"):
        load_array(tmp_path / "big.npz", "x")
    (tmp_path / "text.npy").write_bytes(huge_npy((2,), "<U4"))
    with pytest.raises(Unreadable, match="holds <U4 values, not numbers"):
        load_array(tmp_path / "text.npy")
    np.save(tmp_path / "ok.npy", np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(load_array(tmp_path / "ok.npy"), np.arange(6).reshape(2, 3))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-8])
    with pytest.raises(Unreadable, match="holds 40 bytes"):
        load_array(tmp_path / "cut.npy")


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    path, text = spec_error(load, {"npz": "d.npz"}, (1,), base_dir=tmp_path)
    assert path == ("data", "x_key")
    assert "d.npz array 'x' holds Python objects (dtype object)" in text
    assert "allow_pickle" not in text


def test_huge_npz_for_training_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_bytes(npz({"x": huge_npy(), "y": huge_npy((3,))}))
    path, text = spec_error(load, {"npz": "d.npz"}, (1,), base_dir=tmp_path)
    assert path == ("data", "x_key") and "373 GiB" in text


# --------------------------------------------------------------------------- images


def bomb_png(side: int) -> bytes:
    """A 1-bit palette PNG of side×side pixels in a few KB."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 3, 0,
                                                               0, 0))
            + chunk(b"PLTE", b"\0\0\0\xff\xff\xff") + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("side", "said"), [(10_000, "10000×10000 pixels (100,000,000)"),
                                            (20_000, "400,000,000 pixels")])
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, side: int,
                                                         said: str) -> None:
    (tmp_path / "bomb.png").write_bytes(bomb_png(side))
    with pytest.raises(Unreadable, match=re.escape(f"is an image of {said}, more than the "
                                                   f"{MAX_IMAGE_PIXELS:,}")):
        read_image(tmp_path / "bomb.png", 1, (8, 8))


def test_bad_images_in_a_training_folder(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    Image.new("L", (4, 4)).save(folder / "0.png")
    (folder / "1.png").write_bytes(bomb_png(20_000))
    path, text = spec_error(load, {"image_folder": "images"}, (1, 4, 4), base_dir=tmp_path)
    assert path == ("data", "image_folder") and "images/cat/1.png is an image of 400,000,000" \
        in text
    (folder / "1.png").write_text("not an image")
    _, text = spec_error(load, {"image_folder": "images"}, (1, 4, 4), base_dir=tmp_path)
    assert "images/cat/1.png is not an image Pillow can read" in text
    noise = np.random.default_rng(0).integers(0, 256, (4, 64), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    (folder / "1.png").write_bytes(buffer.getvalue()[:-100])
    _, text = spec_error(load, {"image_folder": "images", "grayscale": True, "resize": [4, 4]},
                         (1, 4, 4), base_dir=tmp_path)
    assert "images/cat/1.png is a truncated or corrupt image" in text


def test_image_modes_are_read_as_grey_or_rgb(tmp_path: Path) -> None:
    grey16 = np.full((4, 4), 32896, np.uint16)  # 128 · 257: mid grey in 16 bits
    Image.fromarray(grey16).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    assert read_image(tmp_path / "16.png", 1).tolist() == [[128] * 4] * 4
    assert read_image(tmp_path / "16.png", 3)[0, 0].tolist() == [128, 128, 128]
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.info["transparency"] = b"\x00\xff"
    palette.save(tmp_path / "p.png", transparency=b"\x00\xff")
    Image.new("LA", (4, 4), (90, 255)).save(tmp_path / "la.png")
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(tmp_path / "cmyk.tif")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(tmp_path / "p.png", 3)[0, 0].tolist() == [10, 20, 30]
        assert read_image(tmp_path / "la.png", 1)[0, 0] == 90
        assert read_image(tmp_path / "cmyk.tif", 3, (2, 2)).tolist() == [[[255] * 3] * 2] * 2
    assert caught == []


# --------------------------------------------------------------------------- predict


def test_predict_refuses_hostile_arrays(tmp_path: Path) -> None:
    model = classifier(tmp_path / "m.onnx")
    predictor = Predictor(model)
    (tmp_path / "big.npy").write_bytes(huge_npy())
    with pytest.raises(SpecError, match="big.npy announces 100000×1000000"):
        read_inputs(tmp_path / "big.npy", predictor.inputs, predictor.metadata.images)
    x = np.zeros((3, 1, 8, 8), np.float32)
    x[1, 0, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(SpecError, match=r"nan.npy: sample 1 \(counting from 0\) holds NaN"):
        read_inputs(tmp_path / "nan.npy", predictor.inputs, predictor.metadata.images)
    with pytest.raises(SpecError, match="image: sample 1 .* holds NaN"):
        predictor.predict(x)
    with pytest.raises(SpecError, match="image: sample 0 .*beyond float32"):
        predictor.predict(np.full((1, 1, 8, 8), 1e39))
    (tmp_path / "inf.csv").write_text("\n".join(",".join(["1"] * 64) for _ in range(2))
                                      + "\n" + ",".join(["inf"] + ["1"] * 63) + "\n")
    with pytest.raises(SpecError, match=r"inf.csv:3: column 1 is 'inf', not a finite number"):
        read_inputs(tmp_path / "inf.csv", predictor.inputs, predictor.metadata.images)
    (tmp_path / "passwd.csv").write_text(PASSWD)
    with pytest.raises(SpecError) as caught:
        read_inputs(tmp_path / "passwd.csv", predictor.inputs, predictor.metadata.images)
    assert "is not a table of numbers: line 2 holds none" in str(caught.value)
    assert "daemon" not in str(caught.value)


def test_predict_on_nan_exits_2_without_warnings(tmp_path: Path) -> None:
    """The real CLI: NaN inputs are refused and nothing numpy says reaches stderr."""
    model = classifier(tmp_path / "m.onnx")
    np.save(tmp_path / "nan.npy", np.full((2, 1, 8, 8), np.nan, np.float32))
    result = run_python("-m", "dlspec", "predict", str(model), str(tmp_path / "nan.npy"))
    assert result.returncode == 2 and result.stdout == ""
    assert "nan.npy: sample 0 (counting from 0) holds NaN or infinite values" in result.stderr
    assert "Warning" not in result.stderr and ".py:" not in result.stderr


@pytest.mark.parametrize(("meta", "said"), [
    ({"inputs": [{"name": "image", "shape": [None, 100000, 100000, 10]}]},
     "more than fit in the"),
    ({"inputs": [{"name": "image", "shape": [None, 3, 8, 8]}]},
     "gives input image the shape 3×8×8 per sample, but the model's is 1×8×8"),
    ({"images": {"image": {"channels": 1, "size": [100000, 1000000]}}},
     "images of 100000×1000000 pixels"),
    ({"task": {"type": 5, "labels": ["x" * 100] * 10000}}, "has no type: {'type': 5"),
    ({"normalization": {"image": {"mean": [10 ** 400], "std": [1]}}}, "must be finite"),
    ({"task": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
])
def test_hostile_metadata_is_refused(tmp_path: Path, meta: dict[str, Any], said: str) -> None:
    extra = {k: v for k, v in meta.items() if k != "inputs"}
    model = classifier(tmp_path / "m.onnx", **extra)
    if "inputs" in meta:
        model = _with_props(model, dlspec_inputs=json.dumps(meta["inputs"]))
    if "normalization" in meta:
        model = _with_props(model, dlspec_normalization='{"image": {"mean": [1' + "0" * 400
                            + '], "std": [1]}}')
    with pytest.raises(SpecError) as caught:
        Predictor(model)
    assert said in str(caught.value) and len(str(caught.value)) < 400


def test_model_of_absurd_fixed_size_is_refused_before_allocating(tmp_path: Path) -> None:
    model = save(tmp_path / "huge.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                 [tensor("x", [100000, 1000000])], [tensor("y", [100000, 1000000])])
    with pytest.raises(SpecError, match=r"x is 100000×1000000 \(373 GiB a batch\)"):
        Predictor(model)


def _with_props(path: Path, **props: str) -> Path:
    import onnx

    model = onnx.load(str(path))
    entries = {p.key: p.value for p in model.metadata_props}
    entries.update(props)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_predict_refuses_bombs_and_outputs_that_cannot_be(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    model = classifier(tmp_path / "m.onnx")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bomb.png").write_bytes(bomb_png(20_000))
    assert predict_cli(model, tmp_path / "in") == 2
    assert "bomb.png is an image of 400,000,000 pixels" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    (tmp_path / "out.csv").mkdir()
    assert predict_cli(model, tmp_path / "x.npy", "-o", tmp_path / "out.csv") == 2
    assert "out.csv: it is a folder" in capsys.readouterr().err
    assert predict_cli(model, tmp_path / "x.npy", "-o", tmp_path / "x.npy" / "p.csv") == 2
    assert "x.npy is a file, not a folder" in capsys.readouterr().err
    assert predict_cli(model, "--sample", "4", "-o", tmp_path / "s.npy") == 2
    assert "m.onnx is not a GAN generator (it was exported for classification)" in \
        capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()


# --------------------------------------------------------------------------- outputs


def test_csv_cells_are_neutralised_and_numbers_stay_numbers() -> None:
    assert [safe_cell(v) for v in ["=cmd|' /C calc'!A0", "+1+2", "-2+3.png", "@SUM(A1)",
                                   "\tx", "\rx", "a\u202eb", "-0.5", "-1", "cat", -0.5, 3]] == \
        ["'=cmd|' /C calc'!A0", "'+1+2", "'-2+3.png", "'@SUM(A1)", "\\tx", "\\rx",
         "a\\u202eb", "-0.5", "-1", "cat", -0.5, 3]
    text = to_csv(Table({"sample": ["=HYPERLINK(\"x\")", "ok"], "p_@x\x1b": [-0.5, 1.0]}))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["sample", "p_@x\\x1b"], ["'=HYPERLINK(\"x\")", "-0.5"], ["ok", "1.0"]]
    # JSON cannot run formulas; hidden characters become \u escapes of the same strings
    text = to_json(Table({"sample": ["a\u202eb", "é"], "p": [-0.5, 1.0]}))
    assert "\u202e" not in text and "\\u202e" in text and "é" in text
    assert json.loads(text) == [{"sample": "a\u202eb", "p": -0.5}, {"sample": "é", "p": 1.0}]


def test_predict_csv_of_formula_file_names(tmp_path: Path) -> None:
    """The real CLI on images whose names are formulas and control characters."""
    model = classifier(tmp_path / "m.onnx")
    names = ["=cmd|' calc'!A0.png", "-2+3.png", "evil\u202egnp.png", "\x1b[2J.png"]
    (tmp_path / "in").mkdir()
    for name in names:
        Image.new("L", (8, 8), 100).save(tmp_path / "in" / name, format="PNG")
    result = run_python("-m", "dlspec", "predict", str(model), str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    cells = [row[0] for row in csv.reader(io.StringIO(result.stdout))][1:]
    assert sorted(cells) == sorted(["'=cmd|' calc'!A0.png", "'-2+3.png",
                                    "evil\\u202egnp.png", "\\x1b[2J.png"])
    probabilities = [row[2] for row in csv.reader(io.StringIO(result.stdout))][1:]
    assert all(0 <= float(p) <= 1 for p in probabilities)


def test_image_outputs_keep_sub_folders_apart_and_stay_inside(tmp_path: Path) -> None:
    paths = image_paths(tmp_path, ["a/1.png", "b/1.png", "a/1.jpg", "../../up.png",
                                   "/etc/abs.png"], 5, "mask")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "a/1.png", "b/1.png", "a/1.jpg.png", "up.png", "etc/abs.png"]
    masks = np.stack([np.full((2, 2), i % 2, np.uint8) for i in range(5)])
    written = write_masks(masks, 2, tmp_path / "out", ["a/1.png", "b/1.png", "a/1.jpg",
                                                       "../../up.png", "/etc/abs.png"])
    assert len({p.resolve() for p in written}) == 5
    assert all((tmp_path / "out") in p.resolve().parents for p in written)
    assert np.asarray(Image.open(tmp_path / "out" / "b" / "1.png")).tolist() == [[255] * 2] * 2


def segmenter(path: Path) -> Path:
    """Identity on 3×4×4 images: 3 class logits per pixel, as a segmentation model."""
    return save(path, [helper.make_node("Identity", ["x"], ["y"])],
                [tensor("x", ["batch", 3, 4, 4])], [tensor("y", ["batch", 3, 4, 4])],
                metadata=contract([{"name": "x", "shape": [None, 3, 4, 4]}],
                                  [{"name": "y", "shape": [None, 3, 4, 4]}],
                                  task={"type": "segmentation"},
                                  images={"x": {"channels": 3, "size": [4, 4]}}))


def test_predict_masks_of_same_named_images(tmp_path: Path) -> None:
    """The real CLI: a/1.png and b/1.png get masks of their own."""
    model = segmenter(tmp_path / "seg.onnx")
    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.new("RGB", (4, 4), colour).save(tmp_path / "in" / folder / "1.png")
    result = run_python("-m", "dlspec", "predict", str(model), str(tmp_path / "in"), "-o",
                        str(tmp_path / "masks"))
    assert result.returncode == 0, result.stderr
    a, b = (np.asarray(Image.open(tmp_path / "masks" / f / "1.png")) for f in ("a", "b"))
    assert a.tolist() == [[0] * 4] * 4 and b.tolist() == [[254] * 4] * 4  # class 2 of 0..2


def test_fifos_and_links_out_of_the_folder_are_not_read(tmp_path: Path) -> None:
    import os

    from dlspec.data.files import resolve

    os.mkfifo(tmp_path / "d.csv")
    with pytest.raises(SpecError, match="d.csv is not a regular file"):
        resolve(tmp_path, "d.csv", "csv")
    model = classifier(tmp_path / "m.onnx")
    os.mkfifo(tmp_path / "x.npy")
    result = run_python("-m", "dlspec", "predict", str(model), str(tmp_path / "x.npy"))
    assert result.returncode == 2 and "x.npy is not a regular file" in result.stderr
    spec = tmp_path / "spec"
    (spec / "images" / "cat").mkdir(parents=True)
    Image.new("L", (4, 4)).save(spec / "images" / "cat" / "0.png")
    Image.new("L", (4, 4)).save(tmp_path / "secret.png")
    (spec / "images" / "cat" / "1.png").symlink_to(tmp_path / "secret.png")
    path, text = spec_error(load, {"image_folder": "images", "grayscale": True}, (1, 4, 4),
                            base_dir=spec)
    assert path == ("data", "image_folder") and "images/cat/1.png leads outside" in text
