"""Error reports as a whole: every problem at once, in file order, with block-use notes."""

from __future__ import annotations

import pytest

import dlspec
from dlspec.errors import SpecError

BLOCK_SPEC = """\
dlspec: 1
name: blk
inputs:
  image: {shape: [3, 8, 8]}
blocks:
  down:
    params: {c: int, k: int}
    layers:
      - conv2d: {out_channels: $c, kernel_size: $k}
      - relu
network:
  - {down: {c: 8, k: 3}, name: d1}
  - {down: {c: 8, k: 9}, name: d2}
"""


def test_shape_error_in_a_block_points_at_the_definition_and_names_the_use() -> None:
    with pytest.raises(SpecError) as info:
        dlspec.shapes(dlspec.loads(BLOCK_SPEC, "blk.yaml"))
    first, note = str(info.value).splitlines()
    assert first.startswith("blk.yaml:9:17: blocks.down.layers[0].conv2d: d2.conv2d_1: "
                            "kernel_size 9 is larger than the 6×6 input")
    assert "from d1.relu_1" in first
    assert note == "    note: in block down(c=8, k=9) (d2), used at network[1] (blk.yaml:13:5)"


def test_section_and_wiring_errors_are_reported_together_in_file_order() -> None:
    text = """\
dlspec: 1
name: broken
inputs:
  x: {shape: [4]}
optimizer: {type: adma}
network:
  - lienar: 3
  - {relu, from: nowhere}
"""
    with pytest.raises(SpecError) as info:
        dlspec.loads(text, "b.yaml")
    lines = str(info.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["b.yaml:5:19", "b.yaml:7:5", "b.yaml:8:18"]
    assert "did you mean 'adamax' or 'adam'?" in lines[0]
    assert "unknown layer kind 'lienar'; did you mean 'linear'?" in lines[1]
    assert "unknown layer 'nowhere' in from:" in lines[2]


def test_a_failed_layer_does_not_cascade_into_its_successors() -> None:
    text = ("dlspec: 1\nname: c\ninputs: {x: {shape: [4]}}\nnetwork:\n"
            "  - {linear: 0, name: a}\n  - relu\n  - {linear: 2, from: a}\n"
            "  - {add, from: [a, relu_1]}\n")
    with pytest.raises(SpecError) as info:
        dlspec.graphs(dlspec.loads(text))
    assert len(info.value.problems) == 1  # only linear: 0; its readers are not blamed
    assert "greater than 0" in str(info.value)


def test_thousands_of_unknown_keys_look_up_the_allowed_keys_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a lookup per problem was what made `check` quadratic in its problems (issue 11)
    from dlspec.spec import validation

    calls = []
    real = validation.allowed_keys
    monkeypatch.setattr(validation, "allowed_keys",
                        lambda *args: calls.append(args) or real(*args))
    keys = "".join(f"bogus_{i}: 1\n" for i in range(2000))
    with pytest.raises(SpecError) as caught:
        dlspec.loads("dlspec: 1\nname: n\ninputs: {x: {shape: [4]}}\nnetwork: [relu]\n" + keys)
    assert len(caught.value.problems) == 2000
    assert len(calls) == 1


def test_did_you_mean_for_thousands_of_unknown_names_compares_a_bounded_number(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # each miss compared with every name above it would be quadratic in the network's size
    from dlspec.spec import context

    compared = []
    real = context.suggest
    monkeypatch.setattr(context, "suggest",
                        lambda name, names: compared.append(len(names)) or real(name, names))
    layers = "".join(f"  - {{name: l{i}, linear: 3, from: nosuch{i}}}\n" for i in range(1000))
    with pytest.raises(SpecError) as caught:
        dlspec.graphs(dlspec.loads("dlspec: 1\nname: n\ninputs: {x: {shape: [4]}}\nnetwork:\n"
                                   + layers))
    assert len(caught.value.problems) == 1000
    assert sum(compared) <= context.NameHints().budget
    assert str(caught.value.problems[-1].hint).startswith("names here: x, l0, l1, ")
    assert str(caught.value.problems[-1].hint).endswith(", ...")
