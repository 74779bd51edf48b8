"""The structures' documentation (dlspec.spec.structure_docs) says what the expansion does:
the same keys, the same defaults, and examples that build; `dlspec kinds NAME` prints it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

import dlspec
from conftest import ROOT
from dlspec.errors import SpecError
from dlspec.spec.model import BlockSpec
from dlspec.spec.structure_docs import REQUIRED, STRUCTURES
from dlspec.spec.structures import STRUCTURES as EXPANDED

INPUTS = {"residual": [16, 32, 32], "sequential": [64], "parallel": [64], "split": [64],
          "chunk": [64], "block": [3, 32, 32]}
STRUCTURE_NAMES = [n for n in STRUCTURES if n != "block"]
# the least each structure needs, where every default is valid
MINIMAL = {"residual": "- residual: {body: [relu]}", "sequential": "- sequential: [relu]",
           "parallel": "- parallel: {branches: [[relu], [tanh]]}",
           "split": "- split: {sizes: [24, 40]}", "chunk": "- chunk: {chunks: 2}"}


def _spec(entries: str, shape: list[int], blocks: str = "") -> str:
    return (f"dlspec: 1\nname: docs\ninputs:\n  x: {{shape: {shape}}}\n{blocks}"
            f"network:\n{textwrap.indent(entries, '  ')}\n")


def _example_spec(name: str) -> str:
    example = STRUCTURES[name].example
    if name != "block":
        return _spec(example, INPUTS[name])
    definition, use = example.split("# in network:\n")
    blocks = "blocks:\n" + textwrap.indent(definition.removeprefix("# under blocks:\n"), "  ")
    return _spec(use, INPUTS[name], blocks)


def _graph(text: str) -> list[tuple[str, str, str]]:
    shaped = dlspec.shapes(dlspec.loads(text))["docs"]
    return [(node.name, node.kind, str(shaped.tensors[node.name])) for node in shaped.graph.nodes]


def test_every_structure_is_documented() -> None:
    assert set(STRUCTURE_NAMES) == set(EXPANDED)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_every_example_builds(name: str) -> None:
    assert _graph(_example_spec(name))


@pytest.mark.parametrize("name", [n for n in STRUCTURE_NAMES if n != "sequential"])
def test_the_documented_keys_are_those_the_expansion_accepts(name: str) -> None:
    with pytest.raises(SpecError, match="unknown key 'zzzz_unknown'") as caught:
        _graph(_with_key(name, "zzzz_unknown", 1))
    allowed = re.search(r"allowed: ([\w, ]+)", str(caught.value))
    assert allowed is not None, str(caught.value)
    assert allowed.group(1).split(", ") == [k.key for k in STRUCTURES[name].keys]


def test_sequential_takes_its_one_key_or_the_list() -> None:
    assert [k.key for k in STRUCTURES["sequential"].keys] == ["layers"]
    assert _graph(_spec("- sequential: {layers: [relu]}", [64])) == _graph(
        _spec(MINIMAL["sequential"], [64]))


def test_the_block_keys_are_blockspecs_fields() -> None:
    doc = STRUCTURES["block"]
    assert {k.key for k in doc.keys} == set(BlockSpec.model_fields)
    for key in doc.keys:
        field = BlockSpec.model_fields[key.key]
        assert (key.default is REQUIRED) == field.is_required()
        if key.default is not REQUIRED:
            assert field.get_default(call_default_factory=True) == key.default


_ABSENT = object()


def _with_key(name: str, key: str, value: object) -> str:
    """The minimal entry with `key: value` set in the structure's mapping (_ABSENT: left
    out)."""
    import yaml

    text = _spec(MINIMAL[name], INPUTS[name])
    data = yaml.safe_load(text)
    for entry in data["network"]:
        if isinstance(entry, dict) and name in entry:
            args = entry[name]
            if not isinstance(args, dict):
                required = next(k.key for k in STRUCTURES[name].keys if k.default is REQUIRED)
                args = entry[name] = {required: args}
            args.pop(key, None)
            if value is not _ABSENT:
                args[key] = value
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize(("name", "key"), [(s, k.key) for s in STRUCTURE_NAMES
                                           for k in STRUCTURES[s].keys
                                           if k.default is not REQUIRED])
def test_a_documented_default_written_out_changes_nothing(name: str, key: str) -> None:
    default = STRUCTURES[name].defaults()[key]
    assert _graph(_with_key(name, key, default)) == _graph(_with_key(name, key, _ABSENT))


def test_kinds_command_prints_a_structure_and_suggests_one() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dlspec", "kinds", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    residual = run("residual")
    assert residual.returncode == 0, residual.stderr
    lines = residual.stdout.splitlines()
    assert lines[0].startswith("residual (structure): merge(body(x), shortcut(x))")
    for text in ("  body: list of layers; required", "  merge: add | concat | multiply; "
                 "default add", "  drop_path: number in [0, 1); default 0.0",
                 "  flat: true | false; default false", "  example:", "        shortcut: project"):
        assert text in lines, text
    assert "identity in evaluation" in residual.stdout
    typo = run("paralel")
    assert typo.returncode == 2 and "did you mean 'parallel'" in typo.stderr
    listing = run().stdout.splitlines()
    assert any(re.match(r"sequential +structure +layers run one after another", line)
               for line in listing)


PROJECTIONS = """\
dlspec: 1
name: projections
inputs:
  clip: {shape: [3, 8, 16, 16]}
network:
  - name: video
    residual:
      body: [{conv3d: {out_channels: 8, kernel_size: 3, stride: 2, padding: 1}}]
      shortcut: project
  - {adaptive_avgpool3d: [1, 4, 4]}
  - {reshape: [8, 4, 4]}
  - name: image
    residual: {body: [{conv2d: {out_channels: 16, kernel_size: 3, padding: 1}}],
               shortcut: project}
  - {reshape: [16, 16]}
  - name: sequence
    residual: {body: [{conv1d: {out_channels: 6, kernel_size: 3, padding: 1}}],
               shortcut: project}
  - flatten
  - {name: features, residual: {body: [{linear: 5}], shortcut: project}}
"""


def test_a_projection_shortcut_is_labelled_with_its_rank() -> None:
    from dlspec.diagram import dot_source

    dot = dot_source(dlspec.shapes(dlspec.loads(PROJECTIONS))["projections"])
    labels = dict(re.findall(r'"(\w+)\.shortcut" \[label=<<B>shortcut</B>  ([^<]*)<', dot))
    assert labels == {"video": "1×1×1 projection, 8 ch, stride 2",
                      "image": "1×1 projection, 16 ch", "sequence": "1-wide projection, 6 ch",
                      "features": "linear projection, 5 units"}
    unshaped = dot_source(dlspec.graphs(dlspec.loads(PROJECTIONS))["projections"])
    assert "<B>shortcut</B>  projection>" in unshaped  # no shapes: no rank to tell
