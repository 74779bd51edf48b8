"""docs/spec-reference.md: generated from the registry and models, committed, and true.

The committed file must equal what `dlspec reference` generates now; every registered kind
needs its own `example` (a class attribute) and appears with all its fields; every YAML
example in the document is rebuilt into a spec here and must check with the output shape
and parameter count the document states.
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dlspec
import dlspec.reference
from conftest import ROOT
from dlspec.cli import main as cli_main
from dlspec.layers.registry import Example, format_shape, kind_names, lookup_kind
from dlspec.reference import (
    COMMAND,
    STRUCTURES,
    anchor,
    kind_fields,
    spec_reference,
    type_name,
    yaml_value,
)
from dlspec.reference_command import add_parser

DOC = ROOT / "docs" / "spec-reference.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
OUTPUT = re.compile(r"^# output: (\S+), (no parameters|1 parameter|([\d,]+) parameters)$",
                    re.MULTILINE)


@functools.cache
def generated() -> str:
    return spec_reference()


def committed() -> str:
    return DOC.read_text(encoding="utf-8")


def headings(text: str) -> list[tuple[str, list[str]]]:
    """Each heading's text (without the #s) and the lines under it, up to the next heading;
    `#` lines inside code blocks are not headings."""
    found: list[tuple[str, list[str]]] = []
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,6} ", line):
            body = []
            found.append((line.lstrip("#").strip(), body))
        else:
            body.append(line)
    return found


def sections(text: str) -> dict[str, str]:
    """Heading → the text under it."""
    return {heading: "\n".join(lines) + "\n" for heading, lines in headings(text)}


def examples(text: str) -> list[tuple[str, str]]:
    """(heading, YAML block) for every example in the document."""
    return [(heading, block) for heading, body in sections(text).items()
            for block in BLOCK.findall(body)]


# --- the committed file --------------------------------------------------------------------

def test_committed_reference_is_up_to_date() -> None:
    assert committed() == generated(), (
        f"docs/spec-reference.md is stale: regenerate it with `{COMMAND}`")


# --- kinds: examples and fields ----------------------------------------------------------------

@pytest.mark.parametrize("name", kind_names())
def test_every_kind_has_an_example(name: str) -> None:
    kind = lookup_kind(name)
    assert kind is not None
    assert isinstance(kind.example, Example), (
        f"{type(kind).__qualname__} ({name}) has no example: give its class "
        f"`example = Example(...)` (dlspec/layers/registry.py)")
    body = sections(generated())[f"`{name}`"]
    assert "No example yet." not in body and len(BLOCK.findall(body)) == 1


def test_hidden_kinds_are_not_documented() -> None:
    hidden = set(kind_names(include_hidden=True)) - set(kind_names())
    headings = sections(committed())
    assert not {f"`{name}`" for name in hidden} & set(headings)


@pytest.mark.parametrize("name", kind_names())
def test_every_kind_appears_with_its_fields(name: str) -> None:
    kind = lookup_kind(name)
    assert kind is not None
    body = sections(committed()).get(f"`{name}`")
    assert body is not None, f"docs/spec-reference.md has no section for {name}; run {COMMAND}"
    for field in kind_fields(kind):
        row = re.search(rf"^\| `{re.escape(field.key)}` \| (.*)$", body, re.MULTILINE)
        assert row, f"{name}: field {field.key} is missing"
        if field.inferred:
            assert "inferred from the input" in row.group(1)
        elif field.required:
            assert "| required |" in row.group(0)
        else:
            assert f"`{yaml_value(field.default)}`" in row.group(1)
    if kind.main is not None:
        assert f"Shorthand: `{name}: VALUE` sets `{kind.main}`." in body
    assert len(BLOCK.findall(body)) == 1, f"{name}: one example"


def test_every_structure_and_section_is_documented() -> None:
    headings = set(sections(committed()))
    for name in [*STRUCTURES, "task", "loss", "optimizer", "schedule", "data", "augment",
                 "train", "transfer", "export"]:
        assert f"`{name}`" in headings
    for name in ("sgd", "adam", "adamw"):
        assert f"`optimizer: {name}`" in headings
    assert "`loss: cross_entropy`" in headings and "`schedule: one_cycle`" in headings


# --- every example is a working spec ------------------------------------------------------------

EXAMPLE_CASES = examples(committed()) if DOC.exists() else []


def test_examples_found() -> None:
    # one per kind, one per structure, and the one of the keys beside a kind
    assert len(EXAMPLE_CASES) == len(kind_names()) + len(STRUCTURES) + 1


@pytest.mark.parametrize(("heading", "block"), EXAMPLE_CASES,
                         ids=[heading.strip("`") for heading, _ in EXAMPLE_CASES])
def test_example_checks_with_the_stated_output(heading: str, block: str) -> None:
    stated = OUTPUT.search(block)
    assert stated, f"{heading}: the example does not state its output"
    spec = dlspec.loads("dlspec: 1\nname: example\n" + block, f"<{heading}>")
    (shaped,) = dlspec.shapes(spec).values()
    (output,) = shaped.outputs().values()
    assert format_shape(output.shape) == stated.group(1)
    params = {"no parameters": 0, "1 parameter": 1}.get(stated.group(2))
    assert shaped.total_params == (
        params if params is not None else int(stated.group(3).replace(",", "")))
    if heading.strip("`") in kind_names():  # the example uses the kind it documents
        assert [n.kind for n in shaped.graph.nodes] == [heading.strip("`")]


# --- the document's links ------------------------------------------------------------------------

def test_headings_are_unique_and_links_resolve() -> None:
    text = committed()
    anchors = [anchor(heading) for heading, _ in headings(text)]
    duplicates = sorted({a for a in anchors if anchors.count(a) > 1})
    assert not duplicates
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and not targets - set(anchors)


def test_yaml_values() -> None:
    assert yaml_value({"kernel_size": [3, 3], "bias": False, "padding": "same"}) == \
        "{kernel_size: [3, 3], bias: false, padding: same}"
    assert yaml_value(None) == "null" and yaml_value(1e-05) == "1e-05"
    assert yaml_value("on") == '"on"' and yaml_value(",") == '","'


# --- the helpers `dlspec kinds` shares -----------------------------------------------------------

@pytest.mark.parametrize("name", ["conv2d", "lstm", "upsample", "prelu", "adaptive_avgpool2d"])
def test_kinds_command_agrees_with_the_shared_helpers(name: str, capsys) -> None:
    kind = lookup_kind(name)
    assert kind is not None
    assert cli_main(["kinds", name]) == 0
    printed = capsys.readouterr().out.splitlines()
    expected = []
    for field in kind_fields(kind):
        default = "required" if field.required else f"default {field.default!r}"
        inferred = " (inferred from the input)" if field.inferred else ""
        expected.append(f"  {field.key}: {type_name(field.schema)}, {default}{inferred}")
    assert expected and printed[-len(expected):] == expected


# --- the command ---------------------------------------------------------------------------------

FAKE = "# Spec reference\n\n3×32×32 → 16×30×30\n"


def reference_main(argv: list[str]) -> int:
    """`dlspec reference ARGV` through the real CLI, in this process."""
    from dlspec.cli import main

    return main(["reference", *argv])


def test_command_writes_the_file(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(dlspec.reference, "spec_reference", lambda: FAKE)
    target = tmp_path / "docs" / "reference.md"
    assert reference_main(["-o", str(target)]) == 0
    assert target.read_bytes() == FAKE.encode("utf-8")
    assert capsys.readouterr().err == f"wrote {target}\n"
    assert reference_main([]) == 0
    assert capsys.readouterr().out == FAKE


def test_command_registers_with_a_parser() -> None:
    parser = argparse.ArgumentParser(prog="dlspec")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reference", "-o", "out.md"])
    assert args.command == "reference" and args.output == Path("out.md")
    assert callable(args.run)


def test_registering_imports_nothing_heavy() -> None:
    code = ("import argparse, sys\n"
            "from dlspec.reference_command import add_parser\n"
            "add_parser(argparse.ArgumentParser().add_subparsers())\n"
            "heavy = [m for m in ('torch', 'dlspec.reference', 'pydantic') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_dlspec_reference_prints_the_committed_file() -> None:
    done = subprocess.run([sys.executable, "-m", "dlspec", "reference"], capture_output=True,
                          cwd=ROOT, check=True)
    assert done.stdout.decode("utf-8") == committed()
