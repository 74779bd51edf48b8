"""Data for networks with several inputs and outputs: named targets, NPZ keys and CSV column
groups mapped by name, images beside a CSV, pairs of one dataset, and the built-in
`listings` and `tagging` sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_data import draw, spec_error, write

from dlspec.data import IGNORE_INDEX, TARGET, DataSplits, TensorSet, load_data, split_indices
from dlspec.data.builtin import TAGGING_VOCABULARY, TAGS, Options, generate, listings
from dlspec.data.fit import Mapped
from dlspec.data.pairs import pair_up
from dlspec.graph import InputDecl
from dlspec.spec.sections import DataConfig, Split, TaskConfig
from dlspec.spec.sections.data import mapping_problems

LISTING_INPUTS = {"image": InputDecl((3, 16, 16)), "features": InputDecl((12,))}
LISTING_OUTPUTS: dict[str, tuple[int, ...]] = {"category": (5,), "price": (1,)}


def load_named(data: dict[str, Any], inputs: dict[str, InputDecl],
               outputs: dict[str, tuple[int, ...]] | None = None, task: str | None = None,
               *, seed: int = 0, base_dir: Path = Path(".")) -> DataSplits:
    return load_data(DataConfig.model_validate(data),
                     TaskConfig(type=task) if task else None,  # type: ignore[arg-type]
                     inputs, seed=seed, base_dir=base_dir, outputs=outputs)


# --------------------------------------------------------------------------- TensorSet


def test_tensor_set_keeps_targets_by_output_and_one_target_as_target() -> None:
    one = TensorSet({"x": torch.zeros(4, 2)}, {"logits": torch.arange(4)})
    assert torch.equal(one.target, torch.arange(4)) and len(one) == 4
    two = TensorSet({"x": torch.zeros(4, 2)}, {"a": torch.arange(4), "b": torch.ones(4, 1)})
    with pytest.raises(ValueError, match=r"targets for 2 outputs \(a, b\).*data.targets"):
        _ = two.target
    part = two.subset(torch.tensor([0, 2]))
    assert len(part) == 2 and part.targets["a"].tolist() == [0, 2]
    assert part.targets["b"].shape == (2, 1)
    with pytest.raises(ValueError, match="differ in length"):
        TensorSet({"x": torch.zeros(4, 2)}, {"a": torch.zeros(3)})


def test_the_one_target_is_keyed_by_the_output_or_target() -> None:
    data = {"dataset": "iris"}
    plain = load_named(data, {"x": InputDecl((4,))}, task="classification")
    assert list(plain.train.targets) == [TARGET] == ["target"]
    named = load_named(data, {"x": InputDecl((4,))}, {"logits": (3,)}, "classification")
    assert list(named.train.targets) == ["logits"]
    assert torch.equal(named.train.target, plain.train.target)
    assert named.target_classes == {"logits": 3} and named.num_classes == 3


# --------------------------------------------------------------------------- mapping checks


def test_mapping_names_are_checked_with_a_suggestion() -> None:
    config = DataConfig(npz="d.npz", inputs={"imag": "images"}, targets={"prise": "y"})
    problems = mapping_problems(config, ["image", "features"], ["category", "price"])
    assert [p.path for p in problems] == [("data", "inputs", "imag"), ("data", "targets", "prise")]
    assert problems[0].on_key and "did you mean 'image'" in (problems[0].hint or "")
    assert "no output 'prise'" in problems[1].message
    pairs = DataConfig.model_validate({"dataset": "digits",
                                       "pairs": {"inputs": ["left", "rigth"]}})
    (problem,) = mapping_problems(pairs, ["left", "right"])
    assert problem.path == ("data", "pairs", "inputs", 1) and "'right'" in (problem.hint or "")
    any_two = DataConfig.model_validate({"dataset": "digits", "pairs": {}})
    (problem,) = mapping_problems(any_two, ["a", "b", "c"])
    assert problem.path == ("data", "pairs") and "the network has 3" in problem.message


def test_load_data_refuses_unknown_names_before_reading(tmp_path: Path) -> None:
    path, text = spec_error(load_named, {"npz": "missing.npz", "inputs": {"imag": "x"}},
                            {"image": InputDecl((2,))}, base_dir=tmp_path)
    assert path == ("data", "inputs", "imag") and "did you mean 'image'" in text


@pytest.mark.parametrize(("data", "where", "words"), [
    ({"dataset": "digits", "inputs": {"x": "x"}}, ("inputs",), "applies to csv, npz"),
    ({"npz": "a.npz", "inputs": {"x": ["a", "b"]}}, ("inputs", "x"), "found a list"),
    ({"csv": "a.csv", "inputs": {"x": ["a", "a"]}}, ("inputs", "x", 1), "listed twice"),
    ({"csv": "a.csv", "features": ["a"], "inputs": {"x": ["b"]}}, ("features",), "not both"),
    ({"npz": "a.npz", "y_key": "t", "targets": {"o": "t"}}, ("y_key",), "not both"),
    ({"dataset": "digits", "pairs": {"inputs": ["a", "a"]}}, ("pairs", "inputs", 1),
     "two different inputs"),
    ({"npz": "a.npz", "pairs": {}, "targets": {"o": "t"}}, ("targets",), "nothing left"),
    ({"npz": "a.npz", "images": {"folder": "p"}}, ("images",), "applies to csv"),
    ({"csv": "a.csv", "images": {"folder": "p", "column": "f"}, "features": ["f"]},
     ("images", "column"), "also a feature"),
    ({"dataset": "listings", "pairs": {}}, ("pairs",), "several arrays"),
])
def test_mapping_keys_are_validated_with_the_section(data: dict[str, Any],
                                                     where: tuple[str | int, ...],
                                                     words: str) -> None:
    from pydantic import ValidationError

    from dlspec.spec.validation import problems_from_validation

    with pytest.raises(ValidationError) as caught:
        DataConfig.model_validate(data)
    (problem,) = problems_from_validation(caught.value, data, DataConfig)
    assert problem.path == where and words in problem.message


# --------------------------------------------------------------------------- NPZ


def save_listings(folder: Path, count: int = 20) -> None:
    rng = np.random.default_rng(0)
    np.savez(folder / "listings.npz", images=rng.random((count, 3, 4, 4)),
             tabular=rng.normal(size=(count, 12)), y_class=np.arange(count) % 5,
             y_price=rng.normal(size=count), tokens=np.arange(count * 6).reshape(count, 6))


NPZ_INPUTS = {"image": InputDecl((3, 4, 4)), "features": InputDecl((12,))}


def test_npz_keys_mapped_to_inputs_and_outputs(tmp_path: Path) -> None:
    save_listings(tmp_path)
    splits = load_named({"npz": "listings.npz", "inputs": {"image": "images",
                                                          "features": "tabular"},
                         "targets": {"category": "y_class", "price": "y_price"},
                         "normalize": "auto"},
                        NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    train = splits.train
    assert train.inputs["image"].shape[1:] == (3, 4, 4)
    assert train.inputs["features"].shape[1:] == (12,)
    category, price = train.targets["category"], train.targets["price"]
    assert category.dtype == torch.int64 and category.ndim == 1
    assert price.shape[1:] == (1,) and price.dtype == torch.float32
    assert splits.target_classes == {"category": 5, "price": None} and splits.num_classes == 5
    assert set(splits.normalization) == {"image", "features"}  # each its own statistics
    assert len(splits.normalization["image"]["mean"]) == 3
    assert len(splits.normalization["features"]["mean"]) == 12
    assert abs(float(train.inputs["features"].mean())) < 1e-5


def test_npz_keys_named_like_the_inputs_and_outputs_need_no_mapping(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", image=np.zeros((6, 3, 4, 4)), features=np.ones((6, 12)),
             category=np.arange(6) % 5, price=np.arange(6.0))
    splits = load_named({"npz": "d.npz", "split": {"train": 1.0}}, NPZ_INPUTS, LISTING_OUTPUTS,
                        base_dir=tmp_path)
    assert sorted(splits.train.targets) == ["category", "price"]
    assert sorted(splits.train.targets["price"].reshape(-1).tolist()) == [0, 1, 2, 3, 4, 5]


def test_npz_mapping_problems_are_located_at_the_key(tmp_path: Path) -> None:
    save_listings(tmp_path)
    base = {"npz": "listings.npz", "targets": {"category": "y_class", "price": "y_price"}}
    path, text = spec_error(load_named, {**base, "inputs": {"image": "imgs",
                                                           "features": "tabular"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "inputs", "image") and "no array 'imgs'" in text
    assert "did you mean 'images'" in text
    path, text = spec_error(load_named, {**base, "inputs": {"image": "images"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "inputs") and "no array for input features" in text
    assert "inputs: {features: ARRAY}" in text
    path, text = spec_error(load_named, {**base, "inputs": {"image": "tabular",
                                                           "features": "images"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "inputs", "image") and "samples are 12 but input image is 3×4×4" in text
    path, text = spec_error(load_named, {"npz": "listings.npz",
                                         "inputs": {"image": "images", "features": "tabular"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "npz") and "no array for output category" in text


def test_npz_dtype_and_sample_count_mismatches(tmp_path: Path) -> None:
    save_listings(tmp_path)
    tokens = {"image": InputDecl((3, 4, 4)), "ids": InputDecl((12,), "int64")}
    path, text = spec_error(load_named, {"npz": "listings.npz",
                                         "inputs": {"image": "images", "ids": "tabular"},
                                         "targets": {"o": "y_class"}},
                            tokens, {"o": (5,)}, base_dir=tmp_path)
    assert path == ("data", "inputs", "ids") and "int64 but the data holds non-integer" in text
    np.savez(tmp_path / "short.npz", a=np.zeros((5, 2)), b=np.zeros((4, 2)), y=np.zeros(5))
    path, text = spec_error(load_named, {"npz": "short.npz"},
                            {"a": InputDecl((2,)), "b": InputDecl((2,))}, base_dir=tmp_path)
    assert path == ("data", "npz") and "b has 4 samples but that of a has 5" in text


def test_several_outputs_are_fitted_to_what_each_output_is(tmp_path: Path) -> None:
    save_listings(tmp_path)
    base = {"npz": "listings.npz", "inputs": {"image": "images", "features": "tabular"}}
    path, text = spec_error(load_named, {**base, "targets": {"category": "y_price",
                                                            "price": "y_class"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "targets", "category") and "not whole numbers" in text
    path, text = spec_error(load_named, {**base, "targets": {"category": "y_class",
                                                            "price": "y_class"}},
                            NPZ_INPUTS, {"category": (3,), "price": (1,)}, base_dir=tmp_path)
    assert "classes 0 to 4 but it gives 3 logits" in text and "linear: 5" in text
    path, text = spec_error(load_named, {**base, "targets": {"category": "y_class",
                                                            "price": "tabular"}},
                            NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert path == ("data", "targets", "price") and "are 12 per sample but the output is 1" in text


def test_outputs_left_out_of_targets_get_none(tmp_path: Path) -> None:
    save_listings(tmp_path)
    splits = load_named({"npz": "listings.npz", "targets": {"price": "y_price"},
                         "inputs": {"image": "images", "features": "tabular"}},
                        NPZ_INPUTS, {"price": (1,), "bottleneck": (8,)}, base_dir=tmp_path)
    assert list(splits.train.targets) == ["price"]
    none = load_named({"npz": "listings.npz", "y_key": None,
                       "inputs": {"image": "images", "features": "tabular"}},
                      NPZ_INPUTS, LISTING_OUTPUTS, base_dir=tmp_path)
    assert none.train.targets == {} and len(none.train) == 16


# --------------------------------------------------------------------------- CSV

TABLE = ("a,b,c,d,kind,price\n" + "".join(
    f"{i},{i * 2},{i % 3},{-i},{'house' if i % 2 else 'flat'},{i * 1.5}\n" for i in range(8)))


def test_csv_column_groups_per_input_and_a_column_per_output(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", TABLE)
    splits = load_named({"csv": "t.csv", "inputs": {"features": ["a", "b", "c"], "extra": "d"},
                         "targets": {"category": "kind", "price": "price"},
                         "split": {"train": 1.0}},
                        {"features": InputDecl((3,)), "extra": InputDecl((1,))},
                        {"category": (2,), "price": (1,)}, base_dir=tmp_path)
    train = splits.train
    order = torch.argsort(train.inputs["features"][:, 0])
    assert train.inputs["features"][order][:2].tolist() == [[0, 0, 0], [1, 2, 1]]
    assert train.inputs["extra"][order].reshape(-1).tolist() == [-i for i in range(8)]
    assert train.targets["category"][order].tolist() == [0, 1] * 4  # flat, house: sorted
    assert splits.target_labels["category"] == ["flat", "house"]
    assert train.targets["price"][order].reshape(-1).tolist() == [i * 1.5 for i in range(8)]


def test_csv_mapping_problems_are_located(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", TABLE)
    inputs = {"features": InputDecl((3,)), "extra": InputDecl((1,))}
    outputs = {"category": (2,), "price": (1,)}
    targets = {"category": "kind", "price": "price"}
    path, text = spec_error(load_named, {"csv": "t.csv", "targets": targets,
                                         "inputs": {"features": ["a", "bb", "c"], "extra": "d"}},
                            inputs, outputs, base_dir=tmp_path)
    assert path == ("data", "inputs", "features", 1) and "did you mean 'b'" in text
    path, text = spec_error(load_named, {"csv": "t.csv", "targets": targets,
                                         "inputs": {"features": ["a", "b", "price"],
                                                    "extra": "d"}},
                            inputs, outputs, base_dir=tmp_path)
    assert path == ("data", "inputs", "features", 2) and "is a target" in text
    path, text = spec_error(load_named, {"csv": "t.csv", "targets": targets,
                                         "inputs": {"features": ["a", "b", "c"]}},
                            inputs, outputs, base_dir=tmp_path)
    assert path == ("data", "inputs") and "input extra has no columns" in text
    path, text = spec_error(load_named, {"csv": "t.csv",
                                         "inputs": {"features": ["a", "b", "c"], "extra": "d"}},
                            inputs, outputs, base_dir=tmp_path)
    assert path == ("data", "csv") and "no column for output category" in text
    path, text = spec_error(load_named, {"csv": "t.csv", "targets": targets,
                                         "inputs": {"features": ["a", "b"], "extra": "d"}},
                            inputs, outputs, base_dir=tmp_path)
    assert path == ("data", "inputs", "features")
    assert "samples are 2 but input features is 3" in text


# --------------------------------------------------------------------------- images beside a CSV


def photos_and_table(folder: Path) -> None:
    rows = ["file,rooms,area,kind"]
    for i in range(6):
        draw(folder / "photos" / f"{i}.png", (6, 5), (40 * i, 0, 255 - 40 * i))
        rows.append(f"{i}.png,{i},{i * 10},{'house' if i % 2 else 'flat'}")
    write(folder / "listings.csv", "\n".join(rows) + "\n")


TWO_INPUTS = {"photo": InputDecl((3, 5, 6)), "tabular": InputDecl((2,))}


def test_images_beside_a_csv_are_joined_by_file_name(tmp_path: Path) -> None:
    photos_and_table(tmp_path)
    splits = load_named({"csv": "listings.csv", "images": {"folder": "photos"},
                         "split": {"train": 1.0}},
                        TWO_INPUTS, {"kind": (2,)}, "classification", base_dir=tmp_path)
    train = splits.train
    assert train.inputs["photo"].shape == (6, 3, 5, 6) and splits.image_inputs == ["photo"]
    order = torch.argsort(train.inputs["tabular"][:, 0])  # rooms, area: file column left out
    assert train.inputs["tabular"][order].tolist() == [[i, i * 10] for i in range(6)]
    red = train.inputs["photo"][order][:, 0, 0, 0] * 255
    assert torch.allclose(red, torch.tensor([40.0 * i for i in range(6)]))
    assert train.target[order].tolist() == [0, 1] * 3 and splits.labels == ["flat", "house"]
    gray = load_named({"csv": "listings.csv", "images": {"folder": "photos", "input": "photo"},
                       "resize": [3, 3], "grayscale": True, "target": "kind"},
                      {"photo": InputDecl((1, 3, 3)), "tabular": InputDecl((2,))},
                      base_dir=tmp_path)
    assert gray.train.inputs["photo"].shape[1:] == (1, 3, 3)


def test_rows_naming_files_outside_the_folder_are_refused(tmp_path: Path) -> None:
    photos_and_table(tmp_path)
    draw(tmp_path / "secret.png", (6, 5), (0, 0, 0))
    (tmp_path / "photos" / "link.png").symlink_to(tmp_path / "secret.png")
    for name, words in [("../secret.png", "not a file name inside photos"),
                        ("link.png", "leads outside photos"),
                        ("7.png", "not a file in photos"),
                        ("notes.txt", "not an image file"),
                        ("a\u202eb.png", "202eb.png")]:
        write(tmp_path / "bad.csv", f"file,rooms,area,kind\n{name},1,2,flat\n0.png,1,2,house\n")
        path, text = spec_error(load_named, {"csv": "bad.csv", "images": {"folder": "photos"}},
                                TWO_INPUTS, {"kind": (2,)}, base_dir=tmp_path)
        assert path == ("data", "images", "column") and "row 2 of bad.csv" in text, text
        assert words in text and "\u202e" not in text


def test_the_image_input_must_be_clear(tmp_path: Path) -> None:
    photos_and_table(tmp_path)
    two_images = {"a": InputDecl((3, 5, 6)), "b": InputDecl((3, 5, 6))}
    path, text = spec_error(load_named, {"csv": "listings.csv", "images": {"folder": "photos"}},
                            two_images, {"kind": (2,)}, base_dir=tmp_path)
    assert path == ("data", "images") and "a, b" in text and "images: {input: NAME" in text


# --------------------------------------------------------------------------- pairs


def test_pairs_are_formed_within_each_split(tmp_path: Path) -> None:
    count = 200
    ids = np.arange(count, dtype=np.float32)[:, None]  # a sample's value is its position
    np.savez(tmp_path / "ids.npz", x=ids, y=np.arange(count) % 4)
    inputs = {"left": InputDecl((1,)), "right": InputDecl((1,))}
    data = {"npz": "ids.npz", "pairs": {"same_fraction": 0.3, "per_sample": 2}}
    splits = load_named(data, inputs, {"same": (1,)}, seed=3, base_dir=tmp_path)
    base = split_indices(count, Split(), 3)
    for pairs, samples in zip((splits.train, splits.val, splits.test), base, strict=True):
        assert pairs is not None and samples is not None
        assert len(pairs) == 2 * len(samples)
        members = {int(v) for name in ("left", "right") for v in pairs.inputs[name].reshape(-1)}
        assert members <= set(samples.tolist())  # no pair crosses splits
        left, right = (pairs.inputs[n].reshape(-1).long() for n in ("left", "right"))
        same = (left % 4 == right % 4).float()
        assert torch.equal(pairs.targets["same"].reshape(-1), same)
        assert bool((left[same == 1] != right[same == 1]).all())  # never paired with itself
    share = float(splits.train.target.mean())
    assert 0.22 < share < 0.38
    assert splits.image_inputs == [] and splits.source.endswith(f"{2 * count} pairs")
    again = load_named(data, inputs, {"same": (1,)}, seed=3, base_dir=tmp_path)
    assert torch.equal(again.train.inputs["right"], splits.train.inputs["right"])
    other = load_named(data, inputs, {"same": (1,)}, seed=4, base_dir=tmp_path)
    assert not torch.equal(other.train.inputs["right"], splits.train.inputs["right"])


def test_pairs_of_digits_for_a_siamese_network() -> None:
    inputs = {"a": InputDecl((1, 8, 8)), "b": InputDecl((1, 8, 8))}
    splits = load_named({"dataset": "digits", "pairs": {}, "normalize": True}, inputs,
                        {"logit": (1,)}, "classification")
    assert splits.num_classes == 2 and splits.labels == ["different", "same"]
    assert splits.train.target.dtype == torch.int64 and splits.image_inputs == ["a", "b"]
    assert set(splits.normalization) == {"a", "b"}
    values = load_named({"dataset": "digits", "pairs": {}}, inputs, {"distance": (1,)})
    assert values.train.target.dtype == torch.float32 and values.train.target.shape[1:] == (1,)


def test_pairs_need_classes() -> None:
    inputs = {"a": InputDecl((10,)), "b": InputDecl((10,))}
    path, text = spec_error(load_named, {"dataset": "diabetes", "pairs": {}}, inputs)
    assert path == ("data", "pairs") and "measured values" in text


def test_pair_up_handles_lonely_classes_and_one_class_splits() -> None:
    rng = np.random.default_rng(0)
    classes = np.array([0, 0, 1, 2, 2, 2])
    first, second, same = pair_up(np.arange(6), classes, 1.0, 3, rng)
    assert same.all() and ((first == second) == (first == 2)).all()  # class 1 is alone
    first, second, same = pair_up(np.array([3, 4, 5]), classes, 0.0, 2, rng)
    assert same.all()  # a split of one class has no pair of two classes
    first, second, same = pair_up(np.arange(6), classes, 0.0, 4, rng)
    assert not same.any() and (classes[first] != classes[second]).all()


# --------------------------------------------------------------------------- listings


def test_listings_match_a_two_input_two_output_network() -> None:
    splits = load_named({"dataset": "listings", "num_samples": 60}, LISTING_INPUTS,
                        LISTING_OUTPUTS, "classification")
    train = splits.train
    assert train.inputs["image"].shape[1:] == (3, 16, 16)  # drawn at the network's size
    assert train.inputs["features"].shape[1:] == (12,)
    assert train.targets["category"].dtype == torch.int64
    assert train.targets["price"].shape[1:] == (1,) and splits.image_inputs == ["image"]
    assert splits.labels == ["red", "green", "blue", "yellow", "magenta"]
    assert splits.num_classes == 5 and splits.source.startswith("listings (generated")
    renamed = load_named({"dataset": "listings", "num_samples": 60,
                          "inputs": {"photo": "image", "tabular": "features"},
                          "targets": {"cls": "category"}},
                         {"photo": InputDecl((3, 8, 8)), "tabular": InputDecl((12,))},
                         {"cls": (5,), "price": (1,)})
    assert renamed.train.inputs["photo"].shape[1:] == (3, 8, 8)
    assert list(renamed.train.targets) == ["cls"]


def test_listings_are_seeded() -> None:
    first, again, other = (listings(Options(num_samples=20, seed=seed)) for seed in (1, 1, 2))
    assert isinstance(first, Mapped) and isinstance(again, Mapped) and isinstance(other, Mapped)
    assert np.array_equal(first.feeds["image"].x, again.feeds["image"].x)
    assert np.array_equal(first.targets["price"].y, again.targets["price"].y)  # type: ignore[arg-type]
    assert not np.array_equal(first.feeds["features"].x, other.feeds["features"].x)


def test_listings_need_both_inputs_and_are_learnable() -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    arrays = generate("listings", Options(num_samples=1500, seed=0,
                                          array_shapes={"image": (3, 24, 24)}))
    assert isinstance(arrays, Mapped)
    images, features = arrays.feeds["image"].x, arrays.feeds["features"].x
    category, price = arrays.targets["category"].y, arrays.targets["price"].y
    assert category is not None and price is not None
    bright = images.max(axis=1) > 0.5  # (N, H, W): the shape's pixels
    colour = (images * bright[:, None]).sum(axis=(2, 3)) / bright.sum(axis=(1, 2))[:, None]
    both = np.concatenate([colour, features], axis=1)
    train, test = slice(0, 1000), slice(1000, None)

    def accuracy(x: np.ndarray) -> float:
        model = LogisticRegression(max_iter=2000).fit(x[train], category[train])
        return float(model.score(x[test], category[test]))

    assert accuracy(both) > 0.9  # the colour and the features together decide
    assert accuracy(colour) < 0.9 and accuracy(features) < 0.7  # neither alone
    onehot = np.eye(5)[category]
    fitted = LinearRegression().fit(np.concatenate([features, onehot], axis=1)[train],
                                    price[train])
    assert fitted.score(np.concatenate([features, onehot], axis=1)[test], price[test]) > 0.95


# --------------------------------------------------------------------------- tagging


def test_tagging_shapes_padding_and_seed() -> None:
    splits = load_named({"dataset": "tagging", "num_samples": 200, "split": {"train": 1.0}},
                        {"tokens": InputDecl((14,), "int64")})
    tokens, tags = splits.train.inputs["tokens"], splits.train.target
    assert tokens.shape == tags.shape == (200, 14) and tokens.dtype == tags.dtype == torch.int64
    assert splits.labels == TAGS and splits.num_classes == len(TAGS)
    assert torch.equal(tokens == 0, tags == IGNORE_INDEX)  # padding: id 0, tag -100
    assert int(tokens.max()) < TAGGING_VOCABULARY and int(tokens.min()) == 0
    lengths = (tokens > 0).sum(dim=1)
    assert int(lengths.min()) >= 3 and bool((tokens[:, 0] > 0).all())
    padded = tokens > 0  # words first, then padding only
    assert torch.equal(padded, torch.arange(14) < lengths[:, None])
    again = load_named({"dataset": "tagging", "num_samples": 200, "split": {"train": 1.0}},
                       {"tokens": InputDecl((14,), "int64")})
    assert torch.equal(again.train.inputs["tokens"], tokens)
    path, text = spec_error(load_named, {"dataset": "tagging", "seq_len": 2},
                            {"tokens": InputDecl((2,), "int64")})
    assert path == ("data", "seq_len") and "at least 3" in text


def test_tagging_targets_for_a_tagger() -> None:
    from dlspec.data import check_outputs
    from dlspec.tasks import TASKS

    if "token_classification" not in TASKS:
        pytest.skip("no token_classification task yet")
    task = TaskConfig(type="token_classification")  # type: ignore[arg-type]
    splits = load_data(DataConfig(dataset="tagging", num_samples=50), task,
                       {"tokens": InputDecl((12,), "int64")}, seed=0, base_dir=Path("."))
    assert splits.train.target.shape[1:] == (12,) and splits.num_classes == len(TAGS)
    check_outputs(splits, (12, len(TAGS)), task)
    path, text = spec_error(check_outputs, splits, (12, 5), task)
    assert path == ("data",) and "should be 12×6" in text and "linear: 6" in text


def test_tagging_needs_context_and_context_is_enough() -> None:
    raw = generate("tagging", Options(num_samples=3000, seq_len=16, seed=0))
    assert not isinstance(raw, Mapped) and raw.y is not None
    tags = raw.y
    padded = np.pad(raw.x, ((0, 0), (1, 1)))  # a neighbour for the first and last word
    before, word, after = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    tagged = tags != IGNORE_INDEX
    train = tagged & (np.arange(len(raw.x)) < 2000)[:, None]
    test = tagged & ~train

    def accuracy(*contexts: tuple[np.ndarray, ...]) -> float:
        """A tagger voting by counts, backing off from the first context to the last."""
        tables: list[dict[tuple[int, ...], Counter[int]]] = []
        for context in contexts:
            table: dict[tuple[int, ...], Counter[int]] = {}
            for key, tag in zip(zip(*(a[train] for a in context), strict=True),
                                tags[train], strict=True):
                table.setdefault(key, Counter())[int(tag)] += 1
            tables.append(table)
        keys = [list(zip(*(a[test] for a in context), strict=True)) for context in contexts]
        right = 0
        for i, tag in enumerate(tags[test]):
            votes = next((t[k[i]] for t, k in zip(tables, keys, strict=True) if k[i] in t),
                         Counter())
            right += bool(votes) and votes.most_common(1)[0][0] == tag
        return right / int(test.sum())

    assert accuracy((word,)) < 0.95  # a word alone is ambiguous
    assert accuracy((before, word, after), (before, word), (word, after), (word,)) > 0.97


# --------------------------------------------------------------------------- located, from files

BAD_DATA = Path(__file__).resolve().parent / "bad_data"
BAD = sorted(BAD_DATA.glob("*.yaml"))


def data_files(folder: Path) -> None:
    """The files the specs in tests/bad_data/ read, beside them in `folder`."""
    (folder / "data").mkdir()
    save_listings(folder / "data")
    rows = ["file,rooms,area,kind,price"]
    for i in range(4):
        draw(folder / "data" / "photos" / f"{i}.png", (6, 5), (40 * i, 0, 0))
        rows.append(f"{i}.png,{i},{i * 10},{'house' if i % 2 else 'flat'},{i * 1.5}")
    write(folder / "data" / "listings.csv", "\n".join(rows) + "\n")
    write(folder / "data" / "escape.csv", "\n".join([*rows[:2], "../secret.png,1,2,flat,3"])
          + "\n")


@pytest.mark.parametrize("spec", BAD, ids=[p.stem for p in BAD])
def test_data_that_does_not_fit_is_located_before_training(spec: Path, tmp_path: Path) -> None:
    """Each file holds one mistake between its data and its network, found when the data is
    loaded for training (`dlspec check` finds it too once it runs `mapping_problems`)."""
    from test_bad_specs import read_expectation

    import dlspec
    from dlspec.api import located
    from dlspec.errors import SpecError

    expected = read_expectation(spec)
    copy = tmp_path / spec.name
    copy.write_text(spec.read_text(encoding="utf-8"))
    data_files(tmp_path)
    loaded = dlspec.load(copy)
    (shaped,) = dlspec.shapes(loaded).values()
    outputs = {name: tuple(info.shape) for name, info in shaped.outputs().items()}
    assert loaded.data is not None
    with pytest.raises(SpecError) as caught, located(loaded.document):
        load_data(loaded.data, loaded.task, dict(shaped.graph.inputs), seed=0,
                  base_dir=tmp_path, outputs=outputs)
    first = caught.value.problems[0].render().splitlines()[0]
    location = f"{copy}:{expected.line}:{expected.column}: "
    assert first.startswith(location + expected.path), first
    missing = [w for w in expected.words if w.lower() not in first.lower()]
    assert not missing, f"missing {missing} in: {first}"


def test_pairs_and_listings_stay_within_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlspec.data.builtin
    import dlspec.data.pairs

    monkeypatch.setattr(dlspec.data.pairs, "MAX_ARRAY_BYTES", 1 << 20)
    monkeypatch.setattr(dlspec.data.builtin, "MAX_ARRAY_BYTES", 1 << 20)
    inputs = {"a": InputDecl((1, 8, 8)), "b": InputDecl((1, 8, 8))}
    path, text = spec_error(load_named, {"dataset": "digits", "pairs": {"per_sample": 100}},
                            inputs)
    assert path == ("data", "pairs", "per_sample") and "fewer pairs" in text
    path, text = spec_error(load_named, {"dataset": "listings", "num_samples": 100},
                            {"image": InputDecl((3, 64, 64)), "features": InputDecl((12,))},
                            LISTING_OUTPUTS)
    assert path == ("data", "num_samples") and "100 listings of 3×64×64 photos" in text
