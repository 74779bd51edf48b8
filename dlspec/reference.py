"""The spec reference, docs/spec-reference.md, generated from the layer registry and the
spec's pydantic models: `dlspec reference -o docs/spec-reference.md`.

Everything in it is read from the code — each kind's docstring, fields, types, defaults
and example from its class (`Params`, its JSON Schema, `example`; tests/test_reference.py
fails for a kind without an example); the training sections from the schema that
`dlspec schema` writes. Only the examples of the keys beside a kind and of the structures
live here. Each example's output shape, parameter count and PyTorch call are computed by
dlspec's own shape inference while generating, so they are true; only that step imports
torch.

The helpers `kind_fields`, `kind_summary` and `type_name` are shared with `dlspec kinds`.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from dlspec.layers.registry import (
    Example,
    LayerKind,
    Shape,
    format_shape,
    kind_names,
    lookup_kind,
    takes_defaults,
)

COMMAND = "dlspec reference -o docs/spec-reference.md"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # dlspec.spec.model's, without importing it


# --- examples beyond the kinds' own ----------------------------------------------------------

# the keys beside a kind, in use
ENTRIES_EXAMPLE = """\
- {name: hidden, linear: 64, repeat: 2, init: {weight: kaiming_normal, bias: zeros}}
- {name: act, relu}
- {name: skip, add, from: [act, x]}
- {name: head, linear: 10, trainable: false}"""

# the structures, as YAML entries (validated like the kinds' examples)
STRUCTURES: dict[str, tuple[str, str]] = {
    "sequential": ("layers run one after another, as one named group", """\
- name: head
  sequential: [{linear: 32}, relu, {linear: 4}]"""),
    "residual": ("`merge(body(x), shortcut(x))`: a skip connection around `body`", """\
- residual:
    body: [{conv2d: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}}, batchnorm2d]
    shortcut: project
    drop_path: 0.1"""),
    "parallel": ("branches that read the same input, merged or left as separate outputs", """\
- parallel:
    branches: {wide: [{linear: 16}], deep: [{linear: 32}, relu, {linear: 8}]}
    merge: concat"""),
    "split": ("parts of given sizes along an axis, each read by name", """\
- {name: parts, split: {sizes: [8, 8], dim: 1}}
- {name: gate, sigmoid, from: parts.0}
- {name: gated, multiply, from: [parts.1, gate]}"""),
    "chunk": ("equal parts along an axis (ShuffleNet's channel split), each read by name", """\
- {name: halves, chunk: 2}
- {name: right, conv2d: {out_channels: 8, kernel_size: 1}, from: halves.1}
- {concat, from: [halves.0, right]}"""),
}
STRUCTURE_INPUTS: dict[str, Shape] = {"sequential": (64,), "residual": (16, 32, 32),
                                      "parallel": (64,), "split": (16, 8, 8),
                                      "chunk": (16, 8, 8)}
STRUCTURE_FIELDS: dict[tuple[str, str], str] = {
    ("residual", "body"): "the layers of the main path",
    ("residual", "shortcut"): "`identity`; `project` (a 1×1 convolution with matching stride "
    "and batch norm, or a linear map, when the shapes differ); or a list of layers",
    ("residual", "merge"): "how body and shortcut combine",
    ("residual", "drop_path"): "stochastic depth: the probability that a sample's body is "
    "dropped while training (survivors scaled by 1/(1-p)); identity at inference and in export",
    ("residual", "flat"): "name the body's layers in the enclosing scope (layer2.0.conv1, as "
    "torchvision names them) instead of under the residual's own name",
    ("split", "sizes"): "the parts' sizes, adding up to the axis",
    ("split", "dim"): "the axis (the batch axis is 0)",
    ("split", "names"): "names for the parts instead of 0, 1, ...",
    ("chunk", "chunks"): "how many equal parts",
    ("chunk", "dim"): "the axis (the batch axis is 0)",
    ("chunk", "names"): "names for the parts instead of 0, 1, ...",
    ("parallel", "branches"): "a list of layer lists, or a mapping branch name → layers",
    ("parallel", "merge"): "`none` only as the last layer: one output per branch",
    ("parallel", "dim"): "the concat axis (the batch axis is 0)",
}

FAMILIES: dict[str, str] = {
    "dense": "Dense layers", "embedding": "Embedding layers", "reshape": "Reshaping layers",
    "regularization": "Regularization layers", "convolution": "Convolution layers",
    "resample": "Resampling layers", "pooling": "Pooling layers",
    "normalization": "Normalization layers", "activation": "Activation layers",
    "recurrent": "Recurrent layers", "attention": "Attention layers",
    "merge": "Merge layers",
}
TRAINING_SECTIONS = ("task", "loss", "optimizer", "schedule", "data", "augment", "train",
                     "transfer", "export")


# --- helpers shared with `dlspec kinds` -----------------------------------------------------

@dataclass(frozen=True)
class KindField:
    """One parameter of a layer kind, as a spec writes it."""

    key: str  # the name in a spec (the alias, e.g. `return`)
    schema: dict[str, Any]  # its JSON Schema
    required: bool
    default: Any  # None when required
    inferred: bool  # an input size that dlspec infers from the incoming tensor
    description: str


def kind_fields(kind: LayerKind) -> list[KindField]:
    """The kind's parameters in declaration order, with type schema and default."""
    properties = kind.Params.model_json_schema(by_alias=True).get("properties", {})
    fields = []
    for field_name, info in kind.Params.model_fields.items():
        key = info.alias or field_name
        schema = properties.get(key, {})
        required = info.is_required()
        fields.append(KindField(
            key, schema, required, None if required else info.get_default(
                call_default_factory=True), field_name in kind.inferred,
            info.description or schema.get("description", "")))
    return fields


def kind_summary(kind: LayerKind) -> str:
    """The first line of the kind's docstring."""
    return (kind.__doc__ or "").strip().split("\n")[0]


def kind_doc(kind: LayerKind) -> str:
    """The kind's whole docstring as one paragraph."""
    return " ".join(inspect.cleandoc(kind.__doc__ or kind.name).split())


def type_name(schema: Mapping[str, Any]) -> str:
    """A JSON-schema property as a short type, as `dlspec kinds` prints it:
    `integer | list of integer`, `one of 'a', 'b'` (the reference's Markdown is `_Types`)."""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if "anyOf" in schema:
        return " | ".join(type_name(s) for s in schema["anyOf"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {type_name(schema.get('items', {}))}"
    return str(schema.get("type", "any")).replace("null", "none")


# --- Markdown building blocks ---------------------------------------------------------------

def yaml_value(value: Any) -> str:
    """A value in YAML flow style: `true`, `null`, `[3, 3]`, `{p: 0.5}`, `same`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value) and value.lower() not in (
            "true", "false", "null", "yes", "no", "on", "off")  # YAML 1.1 booleans, too
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; a column empty in every row is left out."""
    keep = [i for i in range(len(header)) if i == 0 or any(row[i] for row in rows)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |",
             "| " + " | ".join("---" for _ in keep) + " |"]
    lines += ["| " + " | ".join(_cell(row[i]) for i in keep) + " |" for row in rows]
    return lines


class _Types:
    """JSON-schema types as short Markdown: values in backticks as YAML writes them, bounds
    (`integer ≥ 1`), alternatives joined by "or", definitions as links to their sections."""

    def __init__(self, links: dict[str, str], unions: dict[frozenset[str], str]):
        self.links = links  # definition name → Markdown link
        self.unions = unions  # the definitions of a variant union → Markdown link
        self.wanted: list[tuple[str, str]] = []  # (definition, key path) met without a link

    def name(self, schema: Mapping[str, Any], path: str = "", drop_null: bool = False) -> str:
        members = [m for m in self._members(schema)
                   if not (drop_null and m.get("type") == "null")]
        # an alternative's own description says what it means ("true: probability 0.5")
        names = list(dict.fromkeys(self._bare(m, path) + (
            f" ({m['description']})" if m is not schema and "description" in m else "")
            for m in members))
        return " or ".join(names) if names else "any"

    def _members(self, schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        if "anyOf" in schema and "discriminator" not in schema:
            for member in schema["anyOf"]:
                yield from self._members(member)
        elif "oneOf" in schema and "discriminator" not in schema:
            for member in schema["oneOf"]:
                yield from self._members(member)
        else:
            yield schema

    def _bare(self, schema: Mapping[str, Any], path: str) -> str:
        if "discriminator" in schema:
            refs = frozenset(schema["discriminator"]["mapping"].values())
            return self.unions.get(refs, "mapping with a `type`")
        if "$ref" in schema:
            return self._ref(schema["$ref"].rsplit("/", 1)[-1], path)
        if "enum" in schema:
            values = [f"`{yaml_value(v)}`" for v in schema["enum"]]
            return values[0] if len(values) == 1 else "one of " + ", ".join(values)
        if "const" in schema:
            return f"`{yaml_value(schema['const'])}`"
        kind = schema.get("type")
        if kind == "array":
            return self._array(schema, path)
        if kind == "object" or "patternProperties" in schema or "additionalProperties" in schema:
            return self._object(schema, path)
        if kind in ("integer", "number"):
            return kind + _bounds(schema)
        if kind == "string":
            if schema.get("pattern") == NAME_PATTERN:
                return "name"
            if schema.get("minLength") == schema.get("maxLength") == 1:
                return "one character"
            return "string"
        if kind == "null":
            return "`null`"
        return str(kind) if kind else "any"

    def _ref(self, definition: str, path: str) -> str:
        if definition in self.links:
            return self.links[definition]
        self.wanted.append((definition, path))
        return f"{{{definition}}}"  # replaced once the definition's section is placed

    def _array(self, schema: Mapping[str, Any], path: str) -> str:
        items = self.name(schema.get("items", {}), path + "[]") if schema.get("items") else "any"
        if " or " in items:
            items = f"({items})"
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None and low == high:
            return f"list of {low} {items}"
        size = f" (at least {low})" if low and low > 1 else ""
        return f"list of {items}{size}"

    def _object(self, schema: Mapping[str, Any], path: str) -> str:
        values = schema.get("additionalProperties")
        for pattern_value in schema.get("patternProperties", {}).values():
            values = pattern_value
        if isinstance(values, dict) and values:
            inner = self.name(values, path + ".NAME")
            return f"mapping of name → {inner}"
        return "mapping"


def _bounds(schema: Mapping[str, Any]) -> str:
    low = (schema["minimum"], "[") if "minimum" in schema else (
        (schema["exclusiveMinimum"], "(") if "exclusiveMinimum" in schema else None)
    high = (schema["maximum"], "]") if "maximum" in schema else (
        (schema["exclusiveMaximum"], ")") if "exclusiveMaximum" in schema else None)
    if low and high:
        return f" in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
    if low:
        return (" ≥ " if low[1] == "[" else " > ") + _number(low[0])
    if high:
        return (" ≤ " if high[1] == "]" else " < ") + _number(high[0])
    return ""


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- the document -----------------------------------------------------------------------------

@dataclass
class _Shaped:
    """What shape inference says about an example."""

    output: str
    params: int
    call: str


def spec_reference() -> str:
    """The whole reference as Markdown (imports torch to compute the examples' shapes)."""
    from dlspec.spec.schema import spec_schema

    schema = spec_schema()
    doc = _Document(schema)
    return doc.render()


class _Document:
    def __init__(self, schema: dict[str, Any]):
        from dlspec.spec.entries import CommonKeys
        from dlspec.spec.model import Spec

        self.schema = schema
        self.models = {**_models(Spec), **_models(CommonKeys)}
        self.defs: dict[str, Any] = schema["$defs"]
        self.placed: dict[str, str] = {"Layer": "[layer](#layer-entries)"}
        section_links = {s: f"[`{s}`](#{anchor(s)})" for s in TRAINING_SECTIONS}
        unions: dict[frozenset[str], str] = {}
        for section in TRAINING_SECTIONS:
            for member in _flat(schema["properties"][section]):
                if "discriminator" in member:
                    refs = frozenset(member["discriminator"]["mapping"].values())
                    unions.setdefault(refs, f"a {section_links[section]} variant")
        self.types = _Types(self.placed, unions)

    def render(self) -> str:
        parts = [self._intro(), self._top_level(), self._entries(), self._structures(),
                 self._kinds(), self._training()]
        text = "\n".join(line for part in parts for line in part)
        # links to definitions placed after their first mention
        for definition, link in self.placed.items():
            text = text.replace(f"{{{definition}}}", link)
        leftover = re.findall(r"\{([A-Z][A-Za-z0-9]*)\}", text)
        if leftover:
            raise RuntimeError(f"definitions without a section: {sorted(set(leftover))}")
        return text.rstrip("\n") + "\n"

    # --- sections ------------------------------------------------------------------------

    def _intro(self) -> list[str]:
        families = _families()
        lines = [
            "# Spec reference", "",
            f"<!-- Generated by `{COMMAND}` from the layer registry and the spec's pydantic "
            "models. Do not edit: tests/test_reference.py fails when this file is stale. -->",
            "",
            "Every key a dlspec spec may hold: the top-level keys, how a layer entry is "
            "written, the structures, every layer kind with its fields, defaults and a "
            "checked example, and the training sections. Types are as YAML writes them; "
            "`dlspec kinds KIND` prints a kind's fields and `dlspec schema` the JSON Schema "
            "that editors use for completion.", "",
            "Contents:", "",
            "- [Top-level keys](#top-level-keys)",
            "- [Layer entries](#layer-entries)",
            "- [Structures](#structures): " + ", ".join(
                f"[{s}](#{anchor(s)})" for s in STRUCTURES),
            "- [Layer kinds](#layer-kinds)",
        ]
        for family, names in families.items():
            title = FAMILIES.get(family, f"{family.capitalize()} layers")
            lines.append(f"  - [{title}](#{anchor(title)}): " + ", ".join(
                f"[{n}](#{anchor(n)})" for n in names))
        lines.append("- [Training sections](#training-sections): " + ", ".join(
            f"[{s}](#{anchor(s)})" for s in TRAINING_SECTIONS))
        return [*lines, ""]

    def _top_level(self) -> list[str]:
        properties = self.schema["properties"]
        required = set(self.schema.get("required", []))
        lines = ["## Top-level keys", "", _sentence(self.schema.get("description", "")), "",
                 "A spec has either `inputs` and `network` (one network, named after the "
                 "spec) or `networks` (several).", ""]
        rows = [self._row(key, properties[key], key in required, key, "Spec")
                for key in properties if key not in TRAINING_SECTIONS]
        rows += [[f"`{key}`", f"[section](#{anchor(key)})",
                  self._default(properties[key], key in required, "Spec", key),
                  properties[key].get("description", "")] for key in TRAINING_SECTIONS]
        lines += _table(["key", "type", "default", "description"], rows)
        return [*lines, "", *self._pending("###")]

    def _entries(self) -> list[str]:
        from dlspec.spec.entries import CommonKeys

        common = CommonKeys.model_json_schema(by_alias=True)
        self.defs = {**self.defs, **common.get("$defs", {})}
        lines = [
            "## Layer entries", "",
            "`network:` (and a block's `layers:`) is a list of entries that run top to "
            "bottom. An entry is written in one of three ways:", "",
            "- a bare kind, with the kind's defaults: `- relu`, `- flatten`;",
            "- the kind with its main argument (the kind's *shorthand*, listed with each "
            "kind below): `- {linear: 120}`, `- {dropout: 0.2}`, `- {maxpool2d: 2}`;",
            "- the kind with a mapping of its fields, named as in PyTorch: "
            "`- {conv2d: {out_channels: 6, kernel_size: 5, stride: 2}}`.", "",
            "A block defined under `blocks:` is used the same way, with its parameters as "
            "the mapping. Input sizes (`in_features`, `in_channels`, `num_features`, "
            "`input_size`, `embed_dim`, `d_model`, ...) are inferred from the incoming tensor; "
            "a value given for one must agree. Inside a block, any field may be `$name` or "
            "`$(expression)` of the block's parameters.", "",
            "Beside its kind, any entry may have these keys:", "",
        ]
        required = set(common.get("required", []))
        rows = [self._row(key, prop, key in required, key, "CommonKeys")
                for key, prop in common["properties"].items()]
        lines += _table(["key", "type", "default", "description"], rows)
        inputs = {"x": ((64,), "float32")}
        shaped = _shape_of(_fragment(inputs, ENTRIES_EXAMPLE))
        lines += ["", "For example (shapes exclude the batch axis, here and throughout):", "",
                  *_example_block(inputs, ENTRIES_EXAMPLE, shaped), ""]
        return lines + self._pending("###")

    def _structures(self) -> list[str]:
        branches = {key: branch["properties"][key]
                    for branch in self.defs["Layer"]["anyOf"]
                    for key in branch.get("required", []) if key in STRUCTURES}
        lines = ["## Structures", "",
                 "Structures group layers; they are written like kinds and take the same "
                 "keys beside them.", ""]
        for name, (summary, entry) in STRUCTURES.items():
            lines += [f"### `{name}`", "", _sentence(summary), ""]
            value = branches[name]
            if value.get("type") == "object" and "properties" in value:
                required = set(value.get("required", []))
                rows = []
                for key, prop in value["properties"].items():
                    row = self._row(key, prop, key in required, f"{name}.{key}", None)
                    row[3] = row[3] or STRUCTURE_FIELDS.get((name, key), "")
                    rows.append(row)
                lines += _table(["field", "type", "default", "description"], rows)
            else:
                lines.append(f"Its value is a {self.types.name(value, name)}.")
            shaped = _shape_of(_fragment({"x": (STRUCTURE_INPUTS[name], "float32")}, entry))
            lines += ["", "Example:", "", *_example_block(
                {"x": (STRUCTURE_INPUTS[name], "float32")}, entry, shaped), ""]
        return lines

    def _kinds(self) -> list[str]:
        lines = ["## Layer kinds", "",
                 "Each kind's fields carry PyTorch's names and meanings; each example shows "
                 "the PyTorch call it compiles to. Every example below is checked by the "
                 "tests: its output shape and parameter count are dlspec's own shape "
                 "inference.", ""]
        for family, names in _families().items():
            lines += [f"### {FAMILIES.get(family, f'{family.capitalize()} layers')}", ""]
            for name in names:
                kind = lookup_kind(name)
                assert kind is not None
                lines += self._kind(kind)
        return lines

    def _kind(self, kind: LayerKind) -> list[str]:
        lines = [f"#### `{kind.name}`", "", _sentence(kind_doc(kind)), ""]
        fields = kind_fields(kind)
        forms = []
        if not fields:
            forms.append(f"Written bare (`- {kind.name}`); it has no fields.")
        elif takes_defaults(kind):
            forms.append(f"Written bare (`- {kind.name}`), it takes the defaults.")
        if kind.main is not None:
            forms.append(f"Shorthand: `{kind.name}: VALUE` sets `{kind.main}`.")
        if forms:
            lines += [" ".join(forms), ""]
        arity = kind.arity
        if isinstance(arity, tuple):
            count = "one input, or several" if arity[0] == 1 else f"{arity[0]} or more inputs"
            lines += [f"Reads {count} named with `from:`.", ""]
        elif arity != 1:
            lines += [f"Reads {arity} inputs, named with `from:`.", ""]
        if kind.accepts == "int":
            lines += ["Reads integer token ids (an input with `dtype: int64`).", ""]
        if fields:
            rows = []
            for f in fields:
                if f.inferred:
                    default, note = "inferred from the input", "give it only to check it"
                else:
                    default = "required" if f.required else f"`{yaml_value(f.default)}`"
                    note = f.description
                rows.append([f"`{f.key}`", self.types.name(f.schema, f"{kind.name}.{f.key}",
                             drop_null=f.default is None), default, note])
            lines += [*_table(["field", "type", "default", "description"], rows), ""]
        example = kind.example
        if example is None:
            return [*lines, "No example yet.", ""]
        inputs = {name: (shape, example.dtype) for name, shape in example.named_inputs()}
        entry = "- " + _entry(kind.name, example)
        shaped = _shape_of(_fragment(inputs, entry))
        lines += ["Example:", "", *_example_block(inputs, entry, shaped), "",
                  f"Compiles to `{shaped.call}`.", ""]
        return lines

    def _training(self) -> list[str]:
        lines = ["## Training sections", "",
                 "How the network is trained and exported. All are optional (`train` has "
                 "defaults throughout); `dlspec check` validates them, unknown keys included.",
                 ""]
        properties = self.schema["properties"]
        for section in TRAINING_SECTIONS:
            main = _main_ref(properties[section])
            if main is not None:
                self.placed[main] = f"[mapping](#{anchor(section)})"
        for section in TRAINING_SECTIONS:
            lines += self._section(section, properties[section])
        return lines

    def _section(self, key: str, prop: dict[str, Any]) -> list[str]:
        members = [m for m in _flat(prop) if m.get("type") != "null"]
        model = _main_ref(prop)
        description = self.defs[model].get("description") if model else None
        lines = [f"### `{key}`", "", _sentence(description or prop.get("description", "")), ""]
        variants: dict[str, str] = {}
        forms: list[str] = []
        for member in members:
            if "discriminator" in member:
                tags = {ref: tag for tag, ref in member["discriminator"]["mapping"].items()}
                variants = {tags[m["$ref"]]: m["$ref"] for m in member["oneOf"]}
                forms.append(f"`{key}: {{type: NAME, ...}}`: one of the variants below")
            elif "$ref" in member:
                pass  # the section's own model, whose fields follow
            elif member.get("type") == "string" and "enum" in member:
                names = ", ".join(f"`{v}`" for v in member["enum"])
                forms.append(f"`{key}: NAME`: short for `{{type: NAME}}`; NAME is one of "
                             f"{names}")
            elif member.get("type") == "object":
                forms.append(f"`{key}: {{NETWORK: ...}}`: one {key} per network, by network "
                             "name (GANs)")
            else:
                forms.append(f"`{key}: VALUE`: {self.types.name(member, key)}")
        if forms:
            lines += ["Written as:", "", *(f"- {form}" for form in forms), ""]
        if model is not None:
            lines += self._fields(self.defs[model], key, model)
        if variants:
            lines += self._variants(key, variants)
        return lines + self._pending("####")

    def _variants(self, key: str, variants: dict[str, str]) -> list[str]:
        definitions = {name: self.defs[ref.rsplit("/", 1)[-1]]
                       for name, ref in variants.items()}
        shared = [k for k, v in next(iter(definitions.values()))["properties"].items()
                  if k != "type" and all(d["properties"].get(k) == v
                                         for d in definitions.values())]
        lines = []
        if shared:
            first = next(iter(definitions.values()))
            lines += [f"Fields of every {key}:", ""]
            lines += self._fields(first, key, variants[next(iter(definitions))], shared)
        for name, definition in definitions.items():
            lines += [f"#### `{key}: {name}`", ""]
            if definition.get("description"):
                lines += [_sentence(definition["description"]), ""]
            own = [k for k in definition["properties"] if k != "type" and k not in shared]
            if own:
                lines += self._fields(definition, key, variants[name], own)
            else:
                lines += ["No fields of its own.", ""]
        return lines

    # --- tables --------------------------------------------------------------------------

    def _fields(self, definition: Mapping[str, Any], path: str, model: str,
                only: Sequence[str] | None = None) -> list[str]:
        """The table of a definition's fields (`model`: its name or $ref, for defaults)."""
        required = set(definition.get("required", []))
        model = model.rsplit("/", 1)[-1]
        rows = [self._row(k, p, k in required, f"{path}.{k}", model)
                for k, p in definition.get("properties", {}).items()
                if only is None or k in only]
        if not rows:
            return ["No fields: an empty mapping (`{}`) takes it as it is.", ""]
        return [*_table(["field", "type", "default", "description"], rows), ""]

    def _row(self, key: str, prop: Mapping[str, Any], required: bool, path: str,
             model: str | None) -> list[str]:
        drop_null = "default" in prop and prop["default"] is None
        return [f"`{key}`", self.types.name(prop, path, drop_null=drop_null),
                self._default(prop, required, model, key), prop.get("description", "")]

    def _default(self, prop: Mapping[str, Any], required: bool, model: str | None,
                 key: str) -> str:
        """`required`, the schema's default, or what a model's default factory makes."""
        if required:
            return "required"
        if "default" in prop:
            return f"`{yaml_value(prop['default'])}`"
        cls = self.models.get(model or "")
        field = next((f for name, f in cls.model_fields.items()
                      if (f.alias or name) == key), None) if cls else None
        if field is None or field.default_factory is None:
            return "—"
        return _made_default(field.get_default(call_default_factory=True))

    def _pending(self, level: str) -> list[str]:
        """Sections for the definitions met since the last call, each where first used."""
        lines: list[str] = []
        while self.types.wanted:
            definition, path = self.types.wanted.pop(0)
            if definition in self.placed:
                continue
            title = f"`{path}`"
            self.placed[definition] = f"[mapping](#{anchor(title)})"
            schema = self.defs[definition]
            lines += [f"{level} {title}", ""]
            if schema.get("description"):
                lines += [_sentence(schema["description"]), ""]
            lines += self._fields(schema, path, definition)
        return lines


def _flat(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "anyOf" in schema:
        return [m for member in schema["anyOf"] for m in _flat(member)]
    return [schema]


def _main_ref(prop: Mapping[str, Any]) -> str | None:
    refs = [m["$ref"].rsplit("/", 1)[-1] for m in _flat(prop) if "$ref" in m]
    return refs[0] if refs else None


def _made_default(value: Any) -> str:
    """A default made by a factory: `{}`, `[]`, a variant's shorthand, or its defaults."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        tag = getattr(value, "type", None)
        return f"`{tag}`" if isinstance(tag, str) else "its defaults"
    return f"`{yaml_value(value)}`"


def _models(root: Any) -> dict[str, Any]:
    """Every pydantic model reachable from `root`'s fields, by class name ($defs' names)."""
    from pydantic import BaseModel

    found: dict[str, Any] = {}

    def visit(annotation: Any) -> None:
        for argument in get_args(annotation):
            visit(argument)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and (
                annotation.__name__ not in found):
            found[annotation.__name__] = annotation
            for info in annotation.model_fields.values():
                visit(info.annotation)

    visit(root)
    return found


def _families() -> dict[str, list[str]]:
    """Registered (visible) kinds by family: FAMILIES' order, then any other family."""
    found: dict[str, list[str]] = {}
    for name in kind_names():
        kind = lookup_kind(name)
        assert kind is not None
        found.setdefault(kind.family, []).append(name)
    order = [f for f in FAMILIES if f in found] + sorted(set(found) - set(FAMILIES))
    return {family: found[family] for family in order}


# --- examples: entries, tiny specs and their shapes -----------------------------------------

def _entry(kind: str, example: Example) -> str:
    """The example as one flow-style network entry (without the leading `- `)."""
    sources = [name for name, _ in example.named_inputs()]
    if example.name is None and len(sources) == 1:
        return kind if example.args is None else yaml_value({kind: example.args})
    parts = [f"name: {example.name}"] if example.name else []
    parts.append(kind if example.args is None else f"{kind}: {yaml_value(example.args)}")
    if len(sources) > 1:
        parts.append(f"from: {yaml_value(sources)}")
    return "{" + ", ".join(parts) + "}"


def _inputs_yaml(inputs: Mapping[str, tuple[Shape, str]]) -> list[str]:
    lines = []
    for name, (shape, dtype) in inputs.items():
        extra = "" if dtype == "float32" else f", dtype: {dtype}"
        lines.append(f"  {name}: {{shape: {yaml_value(list(shape))}{extra}}}")
    return lines


def _fragment(inputs: Mapping[str, tuple[Shape, str]], entry: str) -> str:
    """A whole spec around one entry (what the tests rebuild from the document)."""
    body = "\n".join("  " + line for line in entry.splitlines())
    return "\n".join(["dlspec: 1", "name: example", "inputs:", *_inputs_yaml(inputs),
                      "network:", body]) + "\n"


def _example_block(inputs: Mapping[str, tuple[Shape, str]], entry: str,
                   shaped: _Shaped) -> list[str]:
    params = {0: "no parameters", 1: "1 parameter"}.get(shaped.params,
                                                        f"{shaped.params:,} parameters")
    return ["```yaml", "inputs:", *_inputs_yaml(inputs), "network:",
            *("  " + line for line in entry.splitlines()),
            f"# output: {shaped.output}, {params}", "```"]


def _shape_of(spec_text: str) -> _Shaped:
    """Output shape, parameter count and PyTorch call of a one-entry spec's last layer."""
    import dlspec
    from dlspec.layers.registry import Call, target_name

    (shaped,) = dlspec.shapes(dlspec.loads(spec_text, "<example>")).values()
    (output,) = shaped.outputs().values()
    node = shaped.graph.nodes[-1]
    build = shaped.info[node.name].build
    if isinstance(build, Call):
        call = build.source()
    elif build is None:
        call = "nothing: the input passes through"
    else:
        name = target_name(build.target)
        kwargs = "".join(f", {k}={v!r}" for k, v in build.kwargs.items())
        if build.pack_inputs:
            call = f"{name}([{', '.join(node.inputs)}]{kwargs})"
        elif build.fold:
            call = functools.reduce(lambda a, b: f"{name}({a}, {b}{kwargs})", node.inputs)
        else:
            call = f"{name}({', '.join(node.inputs)}{kwargs})"
    return _Shaped(format_shape(output.shape), shaped.total_params, call)
