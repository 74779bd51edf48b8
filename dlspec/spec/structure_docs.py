"""What the structures are, for people: their keys, defaults and an example, in one table.

Structures (residual, parallel, sequential, split, chunk) are written like layer kinds but
expanded by dlspec.spec.structures rather than registered; `block` documents the entries of
`blocks:`. `dlspec kinds NAME` prints an entry. A key added to a structure's expansion is
added here in the same change: tests/test_structure_docs.py compares each entry's keys with
the keys the expansion accepts, and builds every example. Pure data: no torch.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "required"


#: the default of a key that must be given
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class KeyDoc:
    """One key of a structure: what it takes, its default, what it does."""

    key: str
    takes: str
    default: Any = REQUIRED
    description: str = ""


@dataclass(frozen=True)
class StructureDoc:
    """One structure: a summary line, its keys, short forms and an example entry (YAML)."""

    name: str
    summary: str
    keys: tuple[KeyDoc, ...]
    example: str
    shorthand: str | None = None
    details: str = ""
    what: str = "structure"  # the family column of `dlspec kinds`

    def defaults(self) -> dict[str, Any]:
        """The optional keys and their defaults."""
        return {k.key: k.default for k in self.keys if k.default is not REQUIRED}

    def lines(self, width: int = 100) -> list[str]:
        """The entry as `dlspec kinds NAME` prints it."""
        out = [f"{self.name} ({self.what}): {self.summary}"]
        if self.details:
            out += textwrap.wrap(self.details, width, initial_indent="  ",
                                 subsequent_indent="  ")
        if self.shorthand:
            out.append(f"  shorthand: {self.shorthand}")
        for key in self.keys:
            default = "required" if key.default is REQUIRED else f"default {_yaml(key.default)}"
            out.append(f"  {key.key}: {key.takes}; {default}")
            out += textwrap.wrap(key.description, width, initial_indent="      ",
                                 subsequent_indent="      ")
        out += ["  example:", *(f"    {line}" for line in self.example.splitlines())]
        return out


def _yaml(value: Any) -> str:
    """A default as YAML writes it: true, null, 0.0, identity."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else "{}" if value == {} else str(value)


_LAYERS = "list of layers"

STRUCTURES: dict[str, StructureDoc] = {doc.name: doc for doc in (
    StructureDoc(
        "sequential", "layers run one after another, as one named group",
        (KeyDoc("layers", _LAYERS, description="the group's layers, top to bottom"),),
        "- name: head\n  sequential: [{linear: 32}, relu, {linear: 4}]",
        shorthand="`sequential: [...]` is `sequential: {layers: [...]}`"),
    StructureDoc(
        "residual", "merge(body(x), shortcut(x)): a skip connection around `body`",
        (KeyDoc("body", _LAYERS, description="the main path"),
         KeyDoc("shortcut", "identity | project | list of layers | {name, project: true} | "
                "{name, layers}", "identity",
                "the skip path: the input itself; `project`, a 1×1 convolution (stride "
                "matched to the body's) + batch norm, or a linear map for 1-D features, when "
                "the shapes differ; your own layers; either one named (its layers' names "
                "begin with that name instead of `shortcut`)"),
         KeyDoc("merge", "add | concat | multiply", "add", "how body and shortcut combine"),
         KeyDoc("drop_path", "number in [0, 1)", 0.0,
                "stochastic depth: in training the whole body is dropped for a sample with "
                "this probability (the others scaled by 1/(1-P)); the identity in evaluation "
                "and export"),
         KeyDoc("flat", "true | false", False,
                "name the residual's layers in the enclosing scope (layer2.0.conv1 rather than "
                "layer2.0.residual.conv1, as torchvision's names are) and draw it as part of "
                "that scope")),
        "- residual:\n"
        "    body:\n"
        "      - {conv2d: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}}\n"
        "      - batchnorm2d\n"
        "    shortcut: project\n"
        "    drop_path: 0.1"),
    StructureDoc(
        "parallel", "branches that read the same input, merged or left as separate outputs",
        (KeyDoc("branches", f"list of {_LAYERS} | mapping name → {_LAYERS}",
                description="two or more; named branches name their layers"),
         KeyDoc("merge", "none | concat | add | multiply", "none",
                "`none`: one output per branch (later layers read them by name)"),
         KeyDoc("dim", "integer", 1, "the concat axis (the batch axis is 0)")),
        "- parallel:\n"
        "    branches: {wide: [{linear: 16}], deep: [{linear: 32}, relu, {linear: 8}]}\n"
        "    merge: concat",
        shorthand="`parallel: [[...], [...]]` is `parallel: {branches: [...]}`"),
    StructureDoc(
        "split", "parts of the given sizes along an axis, each an output later layers read",
        (KeyDoc("sizes", "list of integers", description="the parts' sizes, two or more"),
         KeyDoc("dim", "integer", 1, "the axis cut (the batch axis is 0)"),
         KeyDoc("names", "list of names | null", None,
                "the parts' names (default 0, 1 ...): read as NAME.PART")),
        "- {name: halves, split: {sizes: [24, 40], names: [left, right]}}\n"
        "- {name: swapped, concat: 1, from: [halves.right, halves.left]}",
        shorthand="`split: [24, 40]` is `split: {sizes: [24, 40]}`"),
    StructureDoc(
        "chunk", "equal parts along an axis, each an output later layers read",
        (KeyDoc("chunks", "integer", description="the number of parts, 2 or more"),
         KeyDoc("dim", "integer", 1, "the axis cut (the batch axis is 0)"),
         KeyDoc("names", "list of names | null", None,
                "the parts' names (default 0, 1 ...): read as NAME.PART")),
        "- {name: gates, chunk: 2}\n"
        "- {name: gated, multiply, from: [gates.0, gates.1]}",
        shorthand="`chunk: 2` is `chunk: {chunks: 2}`"),
    StructureDoc(
        "block", "a parameterised sub-network defined under `blocks:` and used like a kind",
        (KeyDoc("layers", _LAYERS, description="its layers; `$param` and `$(expression)` "
                "read its parameters"),
         KeyDoc("params", "mapping name → type | {type, default}", {},
                "its parameters: int, float, bool, str, list or any; with a default they "
                "are optional"),
         KeyDoc("inputs", "list of names | null", None,
                "for a block reading several tensors: a use gives them with `from: [a, b]`"),
         KeyDoc("description", "text | null", None, "shown in summaries and the reference")),
        "# under blocks:\n"
        "basic:\n"
        "  params: {channels: int, stride: {default: 1}}\n"
        "  layers:\n"
        "    - {conv2d: {out_channels: $channels, kernel_size: 3, stride: $stride, "
        "padding: 1}}\n"
        "    - relu\n"
        "# in network:\n"
        "- {name: stage1, basic: {channels: 64}, repeat: 2}",
        details="Not a layer itself: the spec's `blocks:` maps each block's name to these "
        "keys, and a layer entry `NAME: {param: value}` uses it.", what="block"),
)}


def structure_doc(name: str) -> StructureDoc | None:
    """The documentation of structure `name` (or of blocks, `block`), or None."""
    return STRUCTURES.get(name)
