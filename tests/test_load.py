"""The YAML reader: numbers as users mean them, positions, and refusal of unsafe input."""

from __future__ import annotations

import math
import os

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


def test_a_folder_is_named_as_a_folder_with_its_specs(tmp_path) -> None:
    (tmp_path / "net.yaml").write_text("a: 1\n")
    (tmp_path / "other.yml").write_text("a: 1\n")
    with pytest.raises(SpecError) as info:
        load_yaml_file(tmp_path)
    assert str(info.value) == (f"{tmp_path} is a folder, not a spec file; give one of its "
                               "specs: net.yaml, other.yml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpecError, match="is a folder, not a spec file; give a .yaml spec file"):
        load_yaml_file(empty)


def test_fifos_and_devices_are_refused_without_reading(tmp_path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    with pytest.raises(SpecError, match=r"spec.yaml is not a regular file \(a FIFO\)"):
        load_yaml_file(fifo)
    with pytest.raises(SpecError, match=r"/dev/zero is not a regular file \(a device\)"):
        load_yaml_file("/dev/zero")  # endless: must never be read
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(SpecError, match="not a regular file"):
        load_yaml_file(link)


def test_non_utf8_is_located_at_the_first_bad_byte(tmp_path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("dlspec: 1\nname: café\n".encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load_yaml_file(spec)
    assert str(info.value) == (f"{spec}:2:10: file is not UTF-8 text (byte 0xe9: invalid "
                               "continuation byte); save it as UTF-8")


def test_an_unreadable_file_says_why(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "secret.yaml"
    spec.write_text("a: 1\n")

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(spec))

    monkeypatch.setattr(os, "open", denied)  # file modes do not stop root, who runs CI here
    with pytest.raises(SpecError, match=f"cannot read {spec}: permission denied"):
        load_yaml_file(spec)


def test_a_file_growing_past_the_limit_is_read_no_further(tmp_path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # /proc files and files still being written report a size that is not what a read gets
    spec = tmp_path / "big.yaml"
    spec.write_text("# " + "x" * (MAX_FILE_BYTES + 100))
    real_fstat = os.fstat

    def small(fd: int) -> os.stat_result:
        info = list(real_fstat(fd))
        info[6] = 10  # st_size
        return os.stat_result(info)

    monkeypatch.setattr(os, "fstat", small)
    with pytest.raises(SpecError, match="limited to"):
        load_yaml_file(spec)


HOSTILE = {
    "long-line": "a: " + "x" * 500_000 + "\n",
    "deep-but-allowed": "a: " + "[" * 60 + "]" * 60 + "\n",
    "deeper-than-allowed": "a: " + "{b: " * 200 + "1" + "}" * 200 + "\n",
    "many-anchors": "".join(f"k{i}: &a{i} {i}\n" for i in range(2000)) + "z: [" +
                    ", ".join(f"*a{i}" for i in range(2000)) + "]\n",
    "5000-keys": "".join(f"k{i}: {i}\n" for i in range(5000)),  # 20,000: the benchmark
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_read_or_refused_without_hanging(text: str) -> None:
    try:
        document = load_yaml_text(text, "h.yaml")
    except SpecError as exc:
        assert str(exc).startswith("h.yaml:")
    else:
        assert isinstance(document.data, dict)
