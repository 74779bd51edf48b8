"""Property tests: whatever a user writes, `dlspec check` answers ok (0) or with
located errors (2) — never a traceback, never an internal error (70).

Valid specs from tests/fuzz_seeds/ are mutated as YAML data (keys deleted or
misspelt, values replaced by anything, layers duplicated, dropped, swapped or
invented from the registry) and as raw text or bytes, then checked in-process.
Hypothesis runs derandomized, so CI sees the same examples every time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dlspec.cli import main
from dlspec.layers.registry import kind_names, lookup_kind

SEEDS = sorted((Path(__file__).resolve().parent / "fuzz_seeds").glob("*.yaml"))
SEED_TEXT = {p.name: p.read_text(encoding="utf-8") for p in SEEDS}
SEED_DATA = {name: yaml.safe_load(text) for name, text in SEED_TEXT.items()}

LOCATED = re.compile(r"^\S+:\d+:\d+: ")
NOTE = re.compile(r"^\s+note: ")

KINDS = [*kind_names(), "residual", "parallel", "sequential"]


def _param_names(kind: str) -> list[str]:
    found = lookup_kind(kind)
    if found is None:
        return ["body", "branches", "layers", "shortcut", "merge", "dim"]
    return [info.alias or name for name, info in found.Params.model_fields.items()]


PARAMS = {kind: _param_names(kind) for kind in KINDS}
WORDS = sorted({*KINDS, *(p for ps in PARAMS.values() for p in ps), "name", "from", "repeat",
                "trainable", "init", "x", "t", "image", "stem", "stage", "sgd", "adam",
                "identity", "project", "same", "last", "sequence", "int64", "yes", "no",
                "$width", "$undefined", "$(width * 2)", "$(width ** 2)", "${width}", ""})

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=64),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(WORDS),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


# --- mutations of the YAML data ---------------------------------------------------------

Location = tuple[Any, Any]  # (container, key or index)


def _locations(node: Any, out: list[Location]) -> list[Location]:
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _locations(node[key], out)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            out.append((node, index))
            _locations(item, out)
    return out


def _typo(word: str, draw: Callable[..., Any]) -> str:
    letters = string.ascii_lowercase + "_-0"
    if not word:
        return draw(st.sampled_from(letters))
    i = draw(st.integers(0, len(word) - 1))
    how = draw(st.sampled_from(["swap", "drop", "insert", "replace", "upper"]))
    if how == "swap" and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        chars = list(word)
        chars[i - (j == i)], chars[j] = chars[j], chars[i - (j == i)]
        return "".join(chars)
    if how == "drop":
        return word[:i] + word[i + 1:]
    if how == "insert":
        return word[:i] + draw(st.sampled_from(letters)) + word[i:]
    if how == "upper":
        return word.upper()
    return word[:i] + draw(st.sampled_from(letters)) + word[i + 1:]


def _random_layer(draw: Callable[..., Any]) -> Any:
    kind = draw(st.sampled_from(KINDS))
    form = draw(st.sampled_from(["bare", "scalar", "params", "common"]))
    if form == "bare":
        return kind
    if form == "scalar":
        return {kind: draw(scalars)}
    names = PARAMS[kind] or ["unknown"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=4, unique=True))
    entry: dict[str, Any] = {kind: {name: draw(values) for name in chosen} or None}
    if form == "common":
        for key in draw(st.lists(st.sampled_from(["name", "from", "repeat", "trainable",
                                                  "init"]), max_size=2, unique=True)):
            entry[key] = draw(values)
    return entry


def mutate(data: Any, draw: Callable[..., Any]) -> None:
    """Apply one random change, in place."""
    places = _locations(data, [])
    if not places:
        return
    op = draw(st.sampled_from(["delete", "rename", "replace", "replace", "duplicate", "swap",
                               "insert_layer", "insert_layer"]))
    dicts = [p for p in places if isinstance(p[0], dict)]
    lists = [p for p in places if isinstance(p[0], list)]
    if op == "rename" and dicts:
        container, key = draw(st.sampled_from(dicts))
        new = _typo(str(key), draw)
        items = [(new if k == key else k, v) for k, v in container.items()]
        container.clear()
        container.update(items)
    elif op in ("duplicate", "swap", "insert_layer") and lists:
        container, index = draw(st.sampled_from(lists))
        if op == "duplicate":
            container.insert(index, copy.deepcopy(container[index]))
        elif op == "swap":
            other = draw(st.integers(0, len(container) - 1))
            container[index], container[other] = container[other], container[index]
        else:
            container.insert(index, _random_layer(draw))
    elif op == "delete":
        container, key = draw(st.sampled_from(places))
        del container[key]
    else:
        container, key = draw(st.sampled_from(places))
        container[key] = draw(values)


# --- running the check ------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "spec.yaml"


def check(path: Path) -> tuple[int, str]:
    """`dlspec check PATH` in-process: exit code and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(path)])
    return code, err.getvalue()


def assert_ok_or_located(code: int, err: str) -> None:
    assert code in (0, 2), f"exit {code}:\n{err}"
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.splitlines()
        assert lines, "exit 2 without an error message"
        for line in lines:
            assert LOCATED.match(line) or NOTE.match(line), f"unlocated line {line!r}:\n{err}"


def test_the_seeds_are_valid() -> None:
    for seed in SEEDS:
        code, err = check(seed)
        assert code == 0, err


@SETTINGS
@given(seed=st.sampled_from(sorted(SEED_DATA)), data=st.data(),
       count=st.integers(min_value=1, max_value=3))
def test_mutated_specs_get_ok_or_located_errors(spec_file: Path, seed: str, data: st.DataObject,
                                                count: int) -> None:
    spec = copy.deepcopy(SEED_DATA[seed])
    for _ in range(count):
        mutate(spec, data.draw)
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=None)
    note(text)
    spec_file.write_text(text, encoding="utf-8")
    assert_ok_or_located(*check(spec_file))


yaml_characters = st.one_of(st.sampled_from(list(":-[]{},#&*!|>'\"%@`?\t\n $()")),
                            st.characters())
text_edits = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6),
              st.sampled_from(["insert", "delete", "replace"]),
              st.text(yaml_characters, min_size=1, max_size=3)),
    min_size=1, max_size=4)


def _edit(text: Any, edits: list[tuple[int, str, Any]]) -> Any:
    for position, how, piece in edits:
        i = position % (len(text) + 1)
        if how == "insert":
            text = text[:i] + piece + text[i:]
        elif how == "delete":
            text = text[:i] + text[i + len(piece):]
        else:
            text = text[:i] + piece + text[i + len(piece):]
    return text


@settings(SETTINGS, max_examples=100)
@given(seed=st.sampled_from(sorted(SEED_TEXT)), edits=text_edits)
def test_edited_text_gets_ok_or_located_errors(spec_file: Path, seed: str,
                                               edits: list[tuple[int, str, str]]) -> None:
    text = _edit(SEED_TEXT[seed], edits)
    note(repr(text))
    spec_file.write_text(text, encoding="utf-8")
    assert_ok_or_located(*check(spec_file))


byte_edits = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6),
              st.sampled_from(["insert", "delete", "replace"]),
              st.binary(min_size=1, max_size=3)),
    min_size=1, max_size=4)


@settings(SETTINGS, max_examples=50)
@given(seed=st.sampled_from(sorted(SEED_TEXT)), edits=byte_edits)
def test_edited_bytes_get_ok_or_located_errors(spec_file: Path, seed: str,
                                               edits: list[tuple[int, str, bytes]]) -> None:
    raw = _edit(SEED_TEXT[seed].encode("utf-8"), edits)
    note(repr(raw))
    spec_file.write_bytes(raw)
    assert_ok_or_located(*check(spec_file))
