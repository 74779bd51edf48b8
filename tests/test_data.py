"""The data layer: built-in datasets, files, fitting to the network, splits, normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlspec.data import (
    DATASETS,
    IGNORE_INDEX,
    DataSplits,
    check_outputs,
    load_data,
    split_indices,
)
from dlspec.errors import SpecError
from dlspec.graph import InputDecl
from dlspec.spec.sections import SYNTHETIC_DATASETS, DataConfig, Split, TaskConfig

SEQ = 12
# dataset → (task, per-sample input shape, classes or None, per-sample target shape)
BUILTIN: dict[str, tuple[str | None, tuple[int, ...], int | None, tuple[int, ...]]] = {
    "digits": ("classification", (1, 8, 8), 10, ()),
    "digits_pair": ("cyclegan", (1, 8, 8), None, (1, 8, 8)),
    "iris": ("classification", (4,), 3, ()),
    "wine": ("classification", (13,), 3, ()),
    "breast_cancer": ("classification", (30,), 2, ()),
    "diabetes": ("regression", (10,), None, (1,)),
    "moons": ("classification", (2,), 2, ()),
    "circles": ("classification", (2,), 2, ()),
    "blobs": ("classification", (2,), 3, ()),
    "xor": ("classification", (2,), 2, ()),
    "and": ("classification", (2,), 2, ()),
    "nand": ("classification", (2,), 2, ()),
    "spirals": ("classification", (2,), 2, ()),
    "eight_gaussians": ("gan", (2,), 8, ()),
    "sine": ("forecasting", (SEQ, 1), None, (1,)),
    "sequence_sum": ("regression", (SEQ, 2), None, (1,)),
    "parity": ("sequence_classification", (SEQ, 1), 2, ()),
    "token_sentiment": ("sequence_classification", (SEQ,), 2, ()),
    "shapes_masks": ("segmentation", (3, 16, 16), 2, (16, 16)),
    "tagging": (None, (SEQ,), 6, (SEQ,)),
}
TOKENS = {"token_sentiment", "tagging"}  # int64 token ids, read by an embedding
NAMED = {"listings"}  # several named arrays: tests/test_data_mapping.py


def load(data: dict[str, Any], shape: tuple[int, ...], task: str | dict[str, Any] | None = None,
         *, dtype: str = "float32", seed: int = 0, base_dir: Path = Path("."),
         name: str = "x") -> DataSplits:
    config = DataConfig.model_validate(data)
    task_config = (None if task is None else TaskConfig.model_validate(
        {"type": task} if isinstance(task, str) else task))
    return load_data(config, task_config, {name: InputDecl(shape, dtype)}, seed=seed,
                     base_dir=base_dir)


def spec_error(call: Any, *args: Any, **kwargs: Any) -> tuple[tuple[str | int, ...], str]:
    """The first problem's path and rendered text of the SpecError that `call` raises."""
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)
    return caught.value.problems[0].path, str(caught.value)


# --------------------------------------------------------------------------- built-in datasets


def test_every_builtin_dataset_is_described_here() -> None:
    assert set(DATASETS) == set(BUILTIN) | NAMED


@pytest.mark.parametrize("dataset", sorted(BUILTIN))
def test_builtin_dataset_shapes_dtypes_and_classes(dataset: str) -> None:
    task, shape, classes, target_shape = BUILTIN[dataset]
    data: dict[str, Any] = {"dataset": dataset}
    if dataset in SYNTHETIC_DATASETS:
        data["num_samples"] = 40
    dtype = "int64" if dataset in TOKENS else "float32"
    splits = load(data, shape, task, dtype=dtype)
    x = splits.train.inputs["x"]
    assert x.dtype == getattr(torch, dtype) and tuple(x.shape[1:]) == shape
    assert tuple(splits.train.target.shape[1:]) == target_shape
    assert splits.num_classes == classes
    if classes is not None:
        assert splits.train.target.dtype == torch.int64
        every = torch.cat([s.target for s in (splits.train, splits.val, splits.test) if s])
        every = every[every != IGNORE_INDEX]  # positions without a class (padding)
        assert int(every.min()) >= 0 and int(every.max()) < classes
    else:
        assert splits.train.target.dtype == torch.float32
    if dataset in SYNTHETIC_DATASETS:
        assert sum(len(s) for s in (splits.train, splits.val, splits.test) if s) == 40
    assert splits.source.startswith(dataset)


def test_digits_are_images_in_unit_range() -> None:
    splits = load({"dataset": "digits"}, (1, 8, 8), "classification")
    x = splits.train.inputs["x"]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert splits.labels == [str(d) for d in range(10)]
    assert splits.source == "digits (scikit-learn), 1797 samples"


@pytest.mark.parametrize(("gate", "table"), [("and", [0, 0, 0, 1]), ("nand", [1, 1, 1, 0]),
                                             ("xor", [0, 1, 1, 0])])
def test_truth_tables(gate: str, table: list[int]) -> None:
    splits = load({"dataset": gate, "num_samples": 20, "split": {"train": 1.0}}, (2,))
    x, y = splits.train.inputs["x"], splits.train.target
    index = (x[:, 0] * 2 + x[:, 1]).long()
    assert torch.equal(y, torch.tensor(table)[index])


def test_sequence_sum_is_the_adding_problem() -> None:
    splits = load({"dataset": "sequence_sum", "num_samples": 30, "seq_len": 8,
                   "split": {"train": 1.0}}, (8, 2), "regression")
    x, y = splits.train.inputs["x"], splits.train.target
    assert torch.equal(x[:, :, 1].sum(dim=1), torch.full((30,), 2.0))
    assert torch.allclose((x[:, :, 0] * x[:, :, 1]).sum(dim=1, keepdim=True), y)


def test_sequence_sum_with_one_feature_sums_every_value() -> None:
    splits = load({"dataset": "sequence_sum", "num_samples": 30, "split": {"train": 1.0}},
                  (10, 1), "regression")
    x, y = splits.train.inputs["x"], splits.train.target
    assert x.shape == (30, 10, 1)  # seq_len from the input shape
    assert torch.allclose(x.sum(dim=1), y)


def test_parity_and_sine_targets() -> None:
    parity = load({"dataset": "parity", "num_samples": 30, "split": {"train": 1.0}}, (9, 1),
                  {"type": "sequence_classification", "labels": ["even", "odd"]})
    bits = parity.train.inputs["x"][:, :, 0]
    assert torch.equal(bits.sum(dim=1).long() % 2, parity.train.target)
    assert parity.labels == ["even", "odd"]
    sine = load({"dataset": "sine", "num_samples": 30, "noise": 0.0, "split": {"train": 1.0}},
                (25, 1), "forecasting")
    x, y = sine.train.inputs["x"], sine.train.target
    assert torch.allclose(x[:, 0], y, atol=1e-5)  # 25 steps are one period


def test_token_sentiment_labels_say_which_planted_words_outnumber_the_others() -> None:
    splits = load({"dataset": "token_sentiment", "num_samples": 400, "split": {"train": 1.0}},
                  (32,), "sequence_classification", dtype="int64")
    tokens, label = splits.train.inputs["x"], splits.train.target
    positive = ((tokens >= 1) & (tokens <= 20)).sum(dim=1)
    negative = ((tokens >= 21) & (tokens <= 40)).sum(dim=1)
    assert bool((positive != negative).all())
    assert torch.equal((positive > negative).long(), label)
    assert 0.4 < float(label.float().mean()) < 0.6
    assert int(tokens.max()) < 1000 and int(tokens.min()) == 0  # padding at the end
    real = (tokens != 0).sum(dim=1)
    assert int(real.min()) >= 16 and bool((tokens[:, -1] == 0).any())
    padded = torch.arange(32) >= real[:, None]
    assert bool((tokens[padded] == 0).all())
    assert splits.labels == ["negative", "positive"]
    again = load({"dataset": "token_sentiment", "num_samples": 400, "split": {"train": 1.0}},
                 (32,), "sequence_classification", dtype="int64")
    assert torch.equal(again.train.inputs["x"], tokens)


def test_generated_data_follows_the_seed() -> None:
    def moons(seed: int) -> torch.Tensor:
        return load({"dataset": "moons", "num_samples": 50}, (2,), seed=seed).train.inputs["x"]

    assert torch.equal(moons(1), moons(1))
    assert not torch.equal(moons(1), moons(2))


# --------------------------------------------------------------------------- splits


def test_splits_are_disjoint_and_sized_by_fractions() -> None:
    train, val, test = split_indices(200, Split(train=0.7, val=0.2, test=0.1), seed=3)
    assert val is not None and test is not None
    assert (len(train), len(val), len(test)) == (140, 40, 20)
    assert len(set(torch.cat([train, val, test]).tolist())) == 200


def test_splits_are_reproducible_with_a_seed() -> None:
    split = Split(train=0.8, val=0.1, test=0.1)
    first, second = split_indices(100, split, 7), split_indices(100, split, 7)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # type: ignore[arg-type]
    assert not torch.equal(first[0], split_indices(100, split, 8)[0])


def test_a_zero_fraction_gives_no_split() -> None:
    splits = load({"dataset": "and", "num_samples": 50, "split": {"train": 0.8, "val": 0.2}},
                  (2,))
    assert splits.test is None and splits.val is not None
    assert (len(splits.train), len(splits.val)) == (40, 10)


def test_data_seed_overrides_the_training_seed() -> None:
    data = {"dataset": "moons", "num_samples": 50, "seed": 5}
    a = load(data, (2,), seed=0).train.inputs["x"]
    b = load(data, (2,), seed=1).train.inputs["x"]
    assert torch.equal(a, b)


# --------------------------------------------------------------------------- normalisation


def test_normalization_uses_training_statistics_only() -> None:
    data = {"dataset": "blobs", "num_samples": 300, "noise": 2.0}
    plain = load(data, (2,))
    scaled = load({**data, "normalize": "auto"}, (2,))
    train = scaled.train.inputs["x"]
    assert torch.allclose(train.mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(train.std(dim=0, correction=0), torch.ones(2), atol=1e-4)
    stats = scaled.normalization["x"]
    raw_train = plain.train.inputs["x"].double()
    assert np.allclose(stats["mean"], raw_train.mean(dim=0).tolist())
    assert np.allclose(stats["std"], raw_train.std(dim=0, correction=0).tolist())
    assert plain.val is not None and scaled.val is not None
    expected_val = (plain.val.inputs["x"] - torch.tensor(stats["mean"]).float()) / \
        torch.tensor(stats["std"]).float()
    assert torch.allclose(scaled.val.inputs["x"], expected_val, atol=1e-5)
    assert plain.normalization == {}


def test_image_normalization_is_per_channel_and_fixed_stats_apply() -> None:
    auto = load({"dataset": "digits", "normalize": True}, (1, 8, 8))
    assert len(auto.normalization["x"]["mean"]) == 1
    assert abs(float(auto.train.inputs["x"].mean())) < 1e-5
    fixed = load({"dataset": "digits", "normalize": {"mean": [0.5], "std": [0.5]}}, (1, 8, 8))
    x = fixed.train.inputs["x"]
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert fixed.normalization == {"x": {"mean": [0.5], "std": [0.5]}}


def test_fixed_stats_must_match_the_channels() -> None:
    path, text = spec_error(load, {"dataset": "digits", "normalize": {"mean": [0.5, 0.5],
                                                                      "std": [1, 1]}}, (1, 8, 8))
    assert path == ("data", "normalize") and "2 values" in text and "1 channels" in text


# --------------------------------------------------------------------------- fitting the network


def test_digits_resized_for_a_32x32_input() -> None:
    splits = load({"dataset": "digits", "resize": [32, 32], "normalize": "auto"}, (1, 32, 32),
                  {"type": "classification", "num_classes": 10}, name="image")
    assert splits.train.inputs["image"].shape[1:] == (1, 32, 32)
    assert (len(splits.train), len(splits.val or []), len(splits.test or [])) == (1437, 180, 180)


def test_shape_mismatch_names_both_shapes() -> None:
    path, text = spec_error(load, {"dataset": "digits"}, (1, 32, 32), name="image")
    assert path == ("data",)
    assert "1×8×8" in text and "input image is 1×32×32" in text and "resize: [32, 32]" in text


def test_class_count_mismatch_names_both() -> None:
    path, text = spec_error(load, {"dataset": "digits"}, (1, 8, 8),
                            {"type": "classification", "num_classes": 3})
    assert path == ("data",) and "10 classes" in text and "num_classes is 3" in text


def test_continuous_targets_are_not_classes() -> None:
    _, text = spec_error(load, {"dataset": "diabetes"}, (10,), "classification")
    assert "values as targets" in text
    _, text = spec_error(load, {"dataset": "iris"}, (4,), "regression")
    assert "classes as targets" in text


def test_a_source_of_one_array_cannot_feed_several_inputs() -> None:
    config = DataConfig(dataset="moons")
    inputs = {"a": InputDecl((2,)), "b": InputDecl((2,))}
    path, text = spec_error(load_data, config, None, inputs, seed=0, base_dir=Path("."))
    assert path == ("data", "dataset")
    assert "moons feeds one input, but the network reads a, b" in text and "pairs:" in text


def test_check_outputs_compares_classes_and_values() -> None:
    task = TaskConfig(type="classification", num_classes=10)
    digits = load({"dataset": "digits"}, (1, 8, 8), "classification")
    check_outputs(digits, (10,), task)
    path, text = spec_error(check_outputs, digits, (3,), task)
    assert path == ("task",) and "10 classes" in text and "output is 3" in text
    _, text = spec_error(check_outputs, digits, (3,), TaskConfig(type="classification"))
    assert "linear: 10" in text
    binary = load({"dataset": "and", "num_samples": 8}, (2,), "classification")
    check_outputs(binary, (1,), TaskConfig(type="classification"))
    check_outputs(binary, (2,), TaskConfig(type="classification"))
    sums = load({"dataset": "sequence_sum", "num_samples": 20}, (5, 2), "regression")
    check_outputs(sums, (1,), TaskConfig(type="regression"))
    path, text = spec_error(check_outputs, sums, (4,), TaskConfig(type="regression"))
    assert path == ("data",) and "targets are 1 per sample" in text and "output is 4" in text


# --------------------------------------------------------------------------- CSV


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_string_labels(tmp_path: Path) -> None:
    write(tmp_path / "flowers.csv", "length,width,species\n1,2,rose\n3,4,tulip\n5,6,rose\n"
          "7,8,lily\n")
    splits = load({"csv": "flowers.csv", "target": "species", "split": {"train": 1.0}}, (2,),
                  "classification", base_dir=tmp_path)
    assert splits.labels == ["lily", "rose", "tulip"] and splits.num_classes == 3
    order = torch.argsort(splits.train.inputs["x"][:, 0])
    assert splits.train.target[order].tolist() == [1, 2, 1, 0]
    ordered = load({"csv": "flowers.csv", "target": "species", "split": {"train": 1.0}}, (2,),
                   {"type": "classification", "labels": ["rose", "tulip", "lily"]},
                   base_dir=tmp_path)
    assert ordered.train.target[order].tolist() == [0, 1, 0, 2]


def test_csv_features_by_name_and_numeric_targets(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "a,b,c,y\n1,2,3,0.5\n4,5,6,1.5\n")
    splits = load({"csv": "t.csv", "features": ["c", "a"], "split": {"train": 1.0}}, (2,),
                  "regression", base_dir=tmp_path)
    order = torch.argsort(splits.train.inputs["x"][:, 0])
    assert splits.train.inputs["x"][order].tolist() == [[3, 1], [6, 4]]
    assert splits.train.target[order].tolist() == [[0.5], [1.5]]  # target: the last column


def test_csv_non_numeric_feature_column_is_named(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "size,colour,label\n1,red,0\n2,blue,1\n")
    path, text = spec_error(load, {"csv": "t.csv", "target": "label"}, (2,), base_dir=tmp_path)
    assert path == ("data", "csv") and "column 'colour'" in text and "'red'" in text


def test_csv_unknown_target_column_suggests(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "a,label\n1,0\n")
    path, text = spec_error(load, {"csv": "t.csv", "target": "lable"}, (1,), base_dir=tmp_path)
    assert path == ("data", "target") and "did you mean 'label'" in text


def test_missing_file_is_located_at_its_key(tmp_path: Path) -> None:
    path, text = spec_error(load, {"csv": "nope.csv"}, (2,), base_dir=tmp_path)
    assert path == ("data", "csv") and "not found: nope.csv" in text
    assert "relative to the spec's folder" in text
    path, _ = spec_error(load, {"npz": "nope.npz"}, (2,), base_dir=tmp_path)
    assert path == ("data", "npz")
    path, _ = spec_error(load, {"image_folder": "nope"}, (3, 4, 4), base_dir=tmp_path)
    assert path == ("data", "image_folder")


# --------------------------------------------------------------------------- NPZ


def test_npz_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", seq=rng.normal(size=(30, 5, 3)), cls=np.arange(30) % 4)
    splits = load({"npz": "d.npz", "x_key": "seq", "y_key": "cls"}, (5, 3),
                  {"type": "sequence_classification", "num_classes": 4}, base_dir=tmp_path)
    assert splits.train.inputs["x"].dtype == torch.float32
    assert splits.train.target.dtype == torch.int64 and splits.num_classes == 4
    path, text = spec_error(load, {"npz": "d.npz"}, (5, 3), base_dir=tmp_path)
    assert path == ("data", "x_key") and "'seq', 'cls'" in text


def test_npz_tokens_stay_integers(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", x=np.arange(40).reshape(10, 4), y=np.arange(10) % 2)
    splits = load({"npz": "t.npz"}, (4,), "classification", dtype="int64", base_dir=tmp_path)
    assert splits.train.inputs["x"].dtype == torch.int64


# --------------------------------------------------------------------------- image folder


def draw(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder(tmp_path: Path) -> None:
    for i in range(3):
        draw(tmp_path / "photos" / "cricket" / f"{i}.png", (10 + i, 7), (255, 0, 0))
        draw(tmp_path / "photos" / "baseball" / f"{i}.png", (6, 9), (0, 0, 255))
    splits = load({"image_folder": "photos", "resize": [4, 5], "split": {"train": 1.0}},
                  (3, 4, 5), "classification", base_dir=tmp_path)
    x, y = splits.train.inputs["x"], splits.train.target
    assert x.shape == (6, 3, 4, 5) and x.dtype == torch.float32
    assert splits.labels == ["baseball", "cricket"] and splits.num_classes == 2
    red = x[:, 0].mean(dim=(1, 2))
    assert torch.equal((red > 0.5).long(), y)  # cricket is red, class 1
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    gray = load({"image_folder": "photos", "resize": 4, "grayscale": True}, (1, 4, 4),
                base_dir=tmp_path)
    assert gray.train.inputs["x"].shape[1:] == (1, 4, 4)


def test_image_folder_sizes_must_agree_without_resize(tmp_path: Path) -> None:
    draw(tmp_path / "p" / "a" / "1.png", (4, 4), (0, 0, 0))
    draw(tmp_path / "p" / "b" / "1.png", (5, 4), (0, 0, 0))
    _, text = spec_error(load, {"image_folder": "p"}, (3, 4, 4), base_dir=tmp_path)
    assert "differ in size" in text and "resize" in text


def test_image_folder_channel_mismatch_suggests_grayscale(tmp_path: Path) -> None:
    draw(tmp_path / "p" / "a" / "1.png", (4, 4), (0, 0, 0))
    _, text = spec_error(load, {"image_folder": "p"}, (1, 4, 4), base_dir=tmp_path)
    assert "3×4×4" in text and "grayscale: true" in text


def test_empty_image_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    path, text = spec_error(load, {"image_folder": "empty"}, (3, 4, 4), base_dir=tmp_path)
    assert path == ("data", "image_folder") and "no class sub-folders" in text
    (tmp_path / "empty" / "cats").mkdir()
    _, text = spec_error(load, {"image_folder": "empty"}, (3, 4, 4), base_dir=tmp_path)
    assert "empty/cats holds no images" in text
