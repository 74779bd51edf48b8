"""Block-parameter expressions: evaluated by walking the AST, never by eval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlspec.spec.expr import ExpressionError, TensorShape, evaluate, substitute
from dlspec.spec.load import load_yaml_text


@pytest.mark.parametrize(("text", "expected"), [
    ("$c", 16), ("$(c * 4)", 64), ("$(c / 2)", 8), ("$(c // 3)", 5), ("$(c % 5)", 1),
    ("$((c + 2) * -1)", -18), ("$(c / 3)", 16 / 3), ("$( c*2 )", 32),
])
def test_arithmetic(text: str, expected: float) -> None:
    assert evaluate(text, {"c": 16}) == expected


def test_integral_division_gives_an_int() -> None:
    value = evaluate("$(c / 2)", {"c": 64})
    assert value == 32 and type(value) is int


@pytest.mark.parametrize("text", [
    "$(__import__('os').system('true'))", "$(c ** 2)", "$(c[0])",
    "$(lambda: 1)", "$(c if c else 1)", "$('a' * 3)", "$(c is 2)", "$(abs(c))",
    "$(max(c, key=c))", "$(in.shape[c])", "$(in.shape[0:1])",
])
def test_anything_but_arithmetic_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError, match="not allowed"):
        evaluate(text, {"c": 2, "in": TensorShape("in", lambda: (3, 4))})


def test_attributes_belong_to_block_inputs_only() -> None:
    with pytest.raises(ExpressionError, match="c is a parameter .*only inputs have a shape"):
        evaluate("$(c.real)", {"c": 2})


def test_unknown_names_and_bad_forms() -> None:
    with pytest.raises(ExpressionError, match=r"unknown parameter \$d .*parameters here: c"):
        evaluate("$(d + 1)", {"c": 1})
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("$(c / 0)", {"c": 1})
    with pytest.raises(ExpressionError, match="not a parameter reference"):
        evaluate("$c + 1", {"c": 1})


def test_references_work_inside_yaml_flow_mappings() -> None:
    data = load_yaml_text("- conv2d: {out_channels: $(channels * 4), stride: $stride}").data
    assert substitute(data, {"channels": 16, "stride": 2}, lambda *_: None) == [
        {"conv2d": {"out_channels": 64, "stride": 2}}]


def test_substitute_reports_each_failure_with_its_path() -> None:
    failures = []
    substitute({"a": ["$x", {"b": "$(1 +)"}]}, {}, lambda path, msg: failures.append(path))
    assert failures == [("a", 0), ("a", 1, "b")]


BIG = "big*big*big*big*big*big*big*big*big*big*big*big*big*big*big*big"


@pytest.mark.parametrize(("text", "words"), [
    (f"$({BIG})", "beyond the largest number"),  # 10^96 as an exact int
    (f"$({BIG} / 3)", "beyond the largest number"),  # would be OverflowError in int / int
    (f"$({BIG} * 1.5)", "beyond the largest number"),  # int too large to convert to float
    ("$(1e308 * 10)", "beyond the largest number"),  # would be inf
    ("$(1e400)", "not a finite number"),  # Python reads the literal as inf
    ("$(1 // 0)", "division by zero"),
    ("$(1.5 % 0)", "division by zero"),
    ("$(huge + 0)", "parameter huge is a number of about 10000 digits"),
])
def test_out_of_range_results_are_expression_errors(text: str, words: str) -> None:
    with pytest.raises(ExpressionError, match=words):
        evaluate(text, {"big": 10**6, "huge": 10**9999})


def test_the_largest_exact_number_is_allowed() -> None:
    assert evaluate("$(c * c - 1)", {"c": 2**26}) == 2**52 - 1
    assert evaluate("$(-c * 2)", {"c": 2**52}) == -(2**53)


def test_an_overflowing_expression_is_a_located_error_in_check(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(f"dlspec: 1\nname: big\nparams: {{big: 1000000000000000000000}}\n"
                    f"inputs:\n  x: {{shape: [8]}}\nnetwork:\n  - linear: $({BIG} / 3)\n")
    result = subprocess.run([sys.executable, "-m", "dlspec", "check", str(spec)],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert f"{spec}:7:13: network[0].linear: parameter big is a number of about 22 digits" \
        in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("$(max(c, 24))", 24), ("$(min(c, 24, 8))", 8), ("$(round(c / 3))", 5),
    ("$(floor(c / 3))", 5), ("$(ceil(c / 3))", 6), ("$(c != 1)", True),
    ("$(c == 16 and not flag)", False), ("$(1 < c <= 16)", True), ("$(c * $e)", 96),
    ("$(flag or c > 100)", True),
])
def test_functions_comparisons_and_logic(text: str, expected: object) -> None:
    value = evaluate(text, {"c": 16, "e": 6, "flag": True})
    assert value == expected and type(value) is type(expected)


def test_a_block_inputs_shape_is_read_only_when_asked() -> None:
    asked = []
    shape = TensorShape("in", lambda: asked.append(1) or (32, 8, 6))
    params = {"in": shape, "c": 2}
    assert evaluate("$c", params) == 2 and not asked
    assert evaluate("$in.channels", params) == 32
    assert evaluate("$(in.features * c)", params) == 12
    assert evaluate("$(in.shape[-2] + in.rank)", params) == 11
    assert evaluate("$in.shape", params) == [32, 8, 6]
    with pytest.raises(ExpressionError, match=r"in is a block input: read its size as "
                       r"in.channels"):
        evaluate("$(in + 1)", params)
    with pytest.raises(ExpressionError, match="index runs 0..2"):
        evaluate("$(in.shape[3])", params)
    unknown = TensorShape("in", lambda: None)
    with pytest.raises(ExpressionError, match="shape of in is unknown here"):
        evaluate("$in.channels", {"in": unknown})


def test_a_comma_cut_expression_says_why() -> None:
    data = load_yaml_text("- conv2d: {out_channels: $(max(a, b)), kernel_size: 3}").data
    errors: list[str] = []
    substitute(data, {"a": 1, "b": 2}, lambda path, msg: errors.append(msg))
    assert "YAML ends a value at a comma" in errors[0] and '"$(max(a, b))"' in errors[0]
    quoted = load_yaml_text('- conv2d: {out_channels: "$(max(a, b))"}').data
    assert substitute(quoted, {"a": 1, "b": 2}, lambda *_: None) == [
        {"conv2d": {"out_channels": 2}}]
