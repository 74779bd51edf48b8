"""The JSON Schema of the spec format, for editors (yaml-language-server) and CI.

The top level comes from the pydantic models; layer entries are described from
the layer registry, so a new kind appears in the schema with no edit here.
Every layer parameter also accepts a `$name` / `$(expression)` reference.
"""

from __future__ import annotations

import json
from typing import Any

from dlspec.layers.registry import LayerKind, kind_names, lookup_kind, takes_defaults
from dlspec.spec.entries import CommonKeys
from dlspec.spec.model import LAYER_MARKER, NAME_PATTERN, REFERENCE_PATTERN, Spec

SCHEMA_ID = "https://dlspec.dev/schemas/dlspec.schema.json"
_REFERENCE = {"type": "string", "pattern": REFERENCE_PATTERN,
              "description": "a block or spec parameter: $name or $(expression)"}


def spec_schema() -> dict[str, Any]:
    """The whole JSON Schema, as a dict."""
    schema = Spec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    layer_ref = {"$ref": "#/$defs/Layer"}
    layer_list = {"type": "array", "minItems": 1, "items": layer_ref}
    branches: list[dict[str, Any]] = [{
        "type": "string", "description": "a layer kind with default parameters, or a block",
        "enum": [n for n in kind_names() if not _required(_kind(n))]}]
    for name in kind_names():
        kind = _kind(name)
        params = kind.Params.model_json_schema(by_alias=True)
        defs.update(params.pop("$defs", {}))
        branches.append(_entry(name, _parameters(kind, params), kind.__doc__))
    branches.append(_entry("sequential", layer_list, "layers run one after another"))
    branches.append(_entry("residual", {
        "type": "object", "additionalProperties": False, "required": ["body"],
        "properties": {
            "body": layer_list,
            "shortcut": {"anyOf": [
                {"enum": ["identity", "project"]}, layer_list,
                {"type": "object", "additionalProperties": False, "required": ["name"],
                 "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                                "project": {"const": True}, "layers": layer_list}}],
                "default": "identity"},
            "merge": {"enum": ["add", "concat", "multiply"], "default": "add"},
            "drop_path": {"anyOf": [{"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                                    _REFERENCE], "default": 0.0},
            "flat": {"type": "boolean", "default": False}}},
        "body(x) merged with shortcut(x)"))
    parts = {"names": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}},
             "dim": {"anyOf": [{"type": "integer"}, _REFERENCE], "default": 1}}
    sizes = {"anyOf": [{"type": "array", "items": {"anyOf": [
        {"type": "integer", "exclusiveMinimum": 0}, _REFERENCE]}, "minItems": 2}, _REFERENCE]}
    chunks = {"anyOf": [{"type": "integer", "minimum": 2}, _REFERENCE]}
    branches.append(_entry("split", {"anyOf": [sizes, {
        "type": "object", "additionalProperties": False, "required": ["sizes"],
        "properties": {"sizes": sizes, **parts}}]},
        "parts of these sizes along an axis, read as NAME.0, NAME.1 ..."))
    branches.append(_entry("chunk", {"anyOf": [chunks, {
        "type": "object", "additionalProperties": False, "required": ["chunks"],
        "properties": {"chunks": chunks, **parts}}]},
        "equal parts along an axis, read as NAME.0, NAME.1 ..."))
    branches.append(_entry("parallel", {
        "type": "object", "additionalProperties": False, "required": ["branches"],
        "properties": {
            "branches": {"anyOf": [{"type": "array", "items": layer_list, "minItems": 2},
                                   {"type": "object", "additionalProperties": layer_list}]},
            "merge": {"enum": ["none", "concat", "add", "multiply"], "default": "none"},
            "dim": {"type": "integer", "default": 1}}},
        "branches reading the same input"))
    branches.append({"type": "string", "pattern": REFERENCE_PATTERN,
                     "description": "a block parameter holding a layer: - $act"})
    branches.append({
        "type": "object", "description": "a use of a block defined under `blocks:`",
        "minProperties": 1, "properties": _common_properties(),
        "additionalProperties": {"type": ["object", "null"]}})
    defs["Layer"] = {"anyOf": branches}
    defs.update(_COMMON_DEFS)
    _point_markers_at(schema, layer_ref)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema


def _point_markers_at(node: Any, ref: dict[str, str]) -> None:
    """Replace each `{x-dlspec-layer: true}` placeholder with a $ref to Layer."""
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        if isinstance(child, dict) and child.get(LAYER_MARKER):
            child.clear()
            child.update(ref)
        else:
            _point_markers_at(child, ref)


def schema_text() -> str:
    """The schema as the JSON text committed under schemas/."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"


def _kind(name: str) -> LayerKind:
    kind = lookup_kind(name)
    assert kind is not None
    return kind


def _required(kind: LayerKind) -> bool:
    return not takes_defaults(kind)


def _parameters(kind: LayerKind, params: dict[str, Any]) -> dict[str, Any]:
    properties = params.get("properties", {})
    for key, prop in list(properties.items()):
        properties[key] = {"anyOf": [prop, _REFERENCE]}
        if key in kind.inferred:
            properties[key]["description"] = "inferred from the input; give it only to assert it"
    forms: list[dict[str, Any]] = [params]
    if kind.main is not None:
        forms.append(properties[kind.main])
    if not _required(kind):
        forms.append({"type": "null"})
    return {"anyOf": forms} if len(forms) > 1 else params


def _entry(kind: str, value: dict[str, Any], description: str | None) -> dict[str, Any]:
    return {"type": "object", "description": (description or kind).strip().split("\n")[0],
            "required": [kind], "additionalProperties": False,
            "properties": {kind: value, **_common_properties()}}


def _common_properties() -> dict[str, Any]:
    """The keys beside a kind, from entries.CommonKeys (references allowed): each defined
    once under $defs and referenced from every layer entry, which lists them all."""
    schema = CommonKeys.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    _COMMON_DEFS.update(schema.get("$defs", {}))
    for key, prop in schema["properties"].items():
        _COMMON_DEFS[f"EntryKey_{key}"] = {"anyOf": [prop, _REFERENCE],
                                           "description": prop.get("description", "")}
    return {key: {"$ref": f"#/$defs/EntryKey_{key}"} for key in schema["properties"]}


_COMMON_DEFS: dict[str, Any] = {}
