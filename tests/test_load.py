"""The YAML reader: numbers as users mean them, positions, and refusal of unsafe input."""

from __future__ import annotations

import math

import pytest

from dlspec.errors import SpecError
from dlspec.spec.load import MAX_FILE_BYTES, load_yaml_file, load_yaml_text


@pytest.mark.parametrize(("text", "expected"), [
    ("1e-4", 0.0001), ("1.5e3", 1500.0), ("-2E-2", -0.02), ("3", 3), ("0x1f", 31),
    ("0o17", 15), (".inf", math.inf), ("-.inf", -math.inf), ("1.", 1.0), (".5", 0.5),
])
def test_numbers_are_read_as_users_mean_them(text: str, expected: float) -> None:
    value = load_yaml_text(f"v: {text}").data["v"]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "OFF", "y", "n"])
def test_yaml11_booleans_stay_strings(word: str) -> None:
    assert load_yaml_text(f"v: {word}").data["v"] == word


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("False", False),
                                                ("~", None), ("null", None), ("", None)])
def test_core_schema_booleans_and_nulls(text: str, expected: object) -> None:
    assert load_yaml_text(f"v: {text}").data["v"] is expected


def test_positions_of_values_and_keys() -> None:
    doc = load_yaml_text("a: 1\nnet:\n  - conv2d: {k: 3}\n", "f.yaml")
    assert str(doc.locate(("net", 0, "conv2d", "k"))) == "f.yaml:3:17"
    assert str(doc.locate(("net", 0, "conv2d", "k"), on_key=True)) == "f.yaml:3:14"
    # a path that does not exist falls back to its nearest existing ancestor
    assert str(doc.locate(("net", 0, "conv2d", "missing"))) == "f.yaml:3:13"


def test_duplicate_keys_name_both_lines() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert "f.yaml:3:1: a: duplicate key 'a' (first defined on line 1)" in str(info.value)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['echo hi']",
                                 "!!python/name:os.system", "!custom 3"])
def test_object_constructing_tags_are_refused(tag: str) -> None:
    with pytest.raises(SpecError, match="is not allowed in a spec"):
        load_yaml_text(f"a: {tag}\n")


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    with pytest.raises(SpecError, match="expands to more than"):
        load_yaml_text("\n".join(lines))


def test_deep_nesting_is_refused_before_the_composer_recurses() -> None:
    with pytest.raises(SpecError, match="nested more than"):
        load_yaml_text("[" * 1000 + "]" * 1000)


def test_oversized_and_missing_files(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(SpecError, match="limited to"):
        load_yaml_file(big)
    with pytest.raises(SpecError, match="no such spec file"):
        load_yaml_file(tmp_path / "nope.yaml")


def test_syntax_errors_are_located() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml_text("a: [1,\n  b: 2\n", "f.yaml")
    assert str(info.value).startswith("f.yaml:")
    assert "invalid YAML" in str(info.value)
