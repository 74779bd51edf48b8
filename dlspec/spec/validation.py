"""pydantic ValidationErrors → Problems a user can act on.

pydantic's `loc` mixes data keys with union tags; we keep only the steps that
exist in the data so the path points into the YAML. Messages say what was
expected and what was found; unknown keys and choices get a "did you mean".
Allowed keys are read from the model's JSON Schema, so unions and nested
models need no special cases.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from dlspec.errors import Path, Problem
from dlspec.layers.registry import suggest


def problems_from_validation(exc: ValidationError, data: Any,
                             model: type[BaseModel]) -> list[Problem]:
    """One Problem per mistake, with a path into `data` and a helpful message.

    A value checked against a union (`int | list[int]`) fails once per member; those
    errors land on the same path and are merged into the one a user needs.
    """
    by_path: dict[Path, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        path = data_path(data, error["loc"], missing=error["type"] == "missing")
        by_path.setdefault(path, []).append(dict(error))
    # every path that has a deeper error below it: one set, so the check is linear
    above = {path[:depth] for path in by_path for depth in range(len(path))}
    allowed: dict[Path, list[str]] = {}
    problems = []
    for path, errors in by_path.items():
        if path in above:
            # a deeper error says what is wrong inside this value; the union members that
            # rejected the value as a whole (`'same' or 'valid'`) only add noise
            noise = (*_TYPE_WORDS, "literal_error")
            errors = [e for e in errors if e["type"] not in noise]
        problems += [_problem(detail, path, data, model, allowed)
                     for detail in _one_per_mistake(errors)]
    return _drop_missing_explained_by_typos(problems)


_TYPE_WORDS = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
               "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
               "model_type": "a mapping", "none_required": "nothing"}


def _one_per_mistake(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Among a union's failures on one value, keep what says what is wrong with it."""
    if len(errors) <= 1:
        return errors
    specific = [e for e in errors if e["type"] not in _TYPE_WORDS]
    if specific:  # "greater than 0" beats "should be a valid list" for the same value
        unique = {e["msg"]: e for e in specific}
        return list(unique.values())
    wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[e["type"]] for e in errors))
    return [{**errors[0], "type": "union_type", "msg": f"expected {wanted}"}]


def _drop_missing_explained_by_typos(problems: list[Problem]) -> list[Problem]:
    """`kernal_size` unknown + `kernel_size` missing is one mistake: report the typo only."""
    typos = {(p.path[:-1], p.hint) for p in problems if p.on_key and p.hint}
    return [p for p in problems
            if not (p.message.startswith("missing required key ") and
                    (p.path, f"did you mean {p.message.rsplit(' ', 1)[-1]}?") in typos)]


def data_path(data: Any, loc: tuple[Any, ...], missing: bool = False) -> Path:
    """The steps of `loc` that exist in `data` (drops union tags and validator names).

    For a `missing` error the final step is kept: it names the missing key.
    """
    path: list[str | int] = []
    current = data
    for i, step in enumerate(loc):
        if _has(current, step):
            current = current[step]
            path.append(step)
        elif missing and i == len(loc) - 1 and isinstance(step, str):
            path.append(step)
    return tuple(path)


def _has(container: Any, step: Any) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container)


def _problem(error: dict[str, Any], path: Path, data: Any, model: type[BaseModel],
             allowed_at: dict[Path, list[str]]) -> Problem:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = message[:1].lower() + message[1:]
    hint = None
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        parent = path[:-1]
        if parent not in allowed_at:  # many unknown keys in one mapping share one lookup
            allowed_at[parent] = allowed_keys(model, data, parent)
        allowed = allowed_at[parent]
        hint = suggest(key, allowed) or (f"allowed: {', '.join(allowed)}" if allowed else None)
        return Problem(path, f"unknown key {key!r}", hint, on_key=True)
    if kind == "misplaced_key":  # a key that is valid but not here (dlspec.spec.model)
        return Problem(path, message, on_key=True)
    if kind == "unsupported_key":  # a setting dlspec does not honour yet (spec.sections)
        return Problem(path, message, ctx.get("hint"), on_key=True)
    if kind == "empty_section":  # `network:` empty, `inputs:` missing (dlspec.spec.model)
        return Problem(path, message, ctx.get("hint"))
    if kind == "too_short" and value in ([], {}):
        subject = path[-1] if path and isinstance(path[-1], str) else "the list"
        return Problem(path, f"{subject} is empty", _EMPTY_HINTS.get(
            str(subject), f"give at least {ctx.get('min_length', 1)} item(s)"))
    if kind == "missing":
        return Problem(path[:-1], f"missing required key {(path[-1] if path else '?')!r}")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"expected one of {', '.join(choices)}; found {value!r}"
        hint = suggest(str(value), choices)
    elif kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        message = f"unknown type {ctx.get('tag')!r}; expected one of {', '.join(choices)}"
        hint = suggest(str(ctx.get("tag")), choices)
    elif kind == "unknown_choice":  # raised by dlspec.spec.sections for variant names
        choices = list(ctx.get("choices", []))
        hint = suggest(str(value), choices) or f"expected one of: {', '.join(choices)}"
    elif kind == "union_tag_not_found":
        message = f"missing key {ctx.get('discriminator', 'type')!r} saying which kind this is"
    elif kind in _PLAIN_MESSAGES:
        subject = path[-1] if path and isinstance(path[-1], str) else "the value"
        message = _PLAIN_MESSAGES[kind].format(subject=subject, **ctx) + f"; found {_show(value)}"
    elif kind.endswith("_type") or kind.endswith("_parsing") or kind in (
            "multiple_of", "union_type"):
        message = f"{message}; found {_show(value)}"
    return Problem(path, message, hint)


_EMPTY_HINTS = {"network": "list at least one layer", "layers": "list at least one layer",
                "inputs": "name each input and give its shape",
                "networks": "give each network its inputs and layers"}

# pydantic's error types in words a spec's author uses
_PLAIN_MESSAGES = {
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "greater_than": "{subject} must be greater than {gt}",
    "greater_than_equal": "{subject} must be at least {ge}",
    "less_than": "{subject} must be less than {lt}",
    "less_than_equal": "{subject} must be at most {le}",
    "too_short": "{subject} needs at least {min_length} item(s)",
    "too_long": "{subject} takes at most {max_length} item(s)",
}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list) and len(value) > 6:
        return "a list"
    return repr(value)


def allowed_keys(model: type[BaseModel], data: Any, path: Path) -> list[str]:
    """The keys the schema allows at `path` in `data` (for "did you mean")."""
    schema = _schema(model)
    node: dict[str, Any] = schema
    current = data
    for step in path:
        node = _select(schema, node, current)
        if isinstance(step, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(step) or node.get("additionalProperties") or {}
        current = current[step] if _has(current, step) else None
    node = _select(schema, node, current)
    return sorted(node.get("properties", {}))


def _select(root: dict[str, Any], node: dict[str, Any], data: Any) -> dict[str, Any]:
    """Follow $ref and pick the union branch that matches `data`'s `type` field."""
    for _ in range(20):
        if "$ref" in node:
            node = root.get("$defs", {}).get(node["$ref"].rsplit("/", 1)[-1], {})
            continue
        branches = node.get("oneOf") or node.get("anyOf")
        if not branches:
            return node
        candidates = [_select(root, b, data) for b in branches]
        objects = [c for c in candidates if "properties" in c]
        tag = data.get("type") if isinstance(data, dict) else None
        chosen = [c for c in objects if c["properties"].get("type", {}).get("const") == tag]
        node = (chosen or objects or candidates)[0]
    return node


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)
