"""Values set on the command line: `--set optimizer.lr=1e-3 --set train.epochs=5`.

KEY is a dotted path into the spec document: `data.split.val`, `params.width`,
`network.3.linear` (a number indexes a list; `network[3].linear` says the same). VALUE is
YAML, read as the spec file is read: `1e-3` is a float, `true` a boolean, `[32, 32]` a list,
`{type: adam, lr: 0.01}` a mapping; `null` removes a section (`--set schedule=null`) and
inside one means what null means there (for most keys: their default).

An override replaces the value at its path (a mapping given whole replaces the mapping: name
one field to change one field). Overrides apply in the order given, after the variant is
merged and before `params` are substituted, and the result is validated like the file. A
value an override gave is located at its argument, so a problem in it reads
`--set optimizer.lr: ...` rather than pointing into the file.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dlspec.errors import Location, Path, PathItem, Problem, SpecError
from dlspec.spec.load import Document, load_yaml_text

# `a.b`, `a.3`, `a[3]`: names without dots, brackets, `=` or spaces; indexes in brackets
_SEGMENT = r"[^.\[\]=\s]+"
_KEY = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT}|\[\d+\])*$")
_STEP = re.compile(rf"({_SEGMENT})|\[(\d+)\]")
NOT_OVERRIDDEN = ("variants",)

Overrides = Sequence[str] | Mapping[str, Any]


@dataclass(frozen=True)
class Override:
    """One `--set KEY=VALUE`: the path it names, the value it gives, how it was written."""

    key: str  # as written: `optimizer.lr`, `network[3].linear`
    steps: tuple[str, ...]  # `("network", "3", "linear")`: indexes resolved on the data
    value: Any
    argument: str  # `optimizer.lr=1e-3`, as environment.json records it

    @property
    def location(self) -> Location:
        """Where problems in this override are reported: `--set KEY`."""
        return Location("<command line>", 0, 0, argument=f"--set {self.key}")


def parse_overrides(overrides: Overrides | None) -> list[Override]:
    """`["optimizer.lr=1e-3", ...]` (values read as YAML) or `{"optimizer.lr": 1e-3}` (values
    taken as given) → Overrides; SpecError (exit 2) for one that is not KEY=VALUE."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [_override(str(key), copy.deepcopy(value),
                          f"{key}={json.dumps(value, default=str)}")
                for key, value in overrides.items()]
    if isinstance(overrides, str):  # one override, not a sequence of characters
        overrides = [overrides]
    return [_parse(text) for text in overrides]


def _parse(text: str) -> Override:
    key, equals, value = text.partition("=")
    key = key.strip()
    where = Location("<command line>", 0, 0, argument=f"--set {key or text}")
    if not equals:
        raise SpecError(Problem((), f"{text!r} is not KEY=VALUE", "write e.g. "
                                "--set optimizer.lr=0.001", location=where))
    if not value.strip():
        raise SpecError(Problem((), "no value after '='", "give a YAML value, e.g. "
                                f"{key or 'train.epochs'}=5",
                                location=where))
    try:
        parsed = load_yaml_text(value, f"--set {key}").data
    except SpecError as exc:
        reason = exc.problems[0].message.removeprefix("invalid YAML: ").replace(" opened here", "")
        raise SpecError(Problem((), f"{value!r} is not a YAML value ({reason})",
                                "quote a string that holds YAML's special characters, "
                                "e.g. --set 'name=\"a: b\"'", location=where)) from None
    return _override(key, parsed, text)


def _override(key: str, value: Any, argument: str) -> Override:
    if not key:
        raise SpecError(Problem((), "the key is empty", "write e.g. --set train.epochs=5",
                                location=Location("<command line>", 0, 0,
                                                  argument=f"--set {argument}")))
    if not _KEY.match(key):
        raise SpecError(Problem((), f"{key!r} is not a path into the spec", "write keys "
                                "joined by dots, list entries by number: optimizer.lr, "
                                "network.3.linear",
                                location=Location("<command line>", 0, 0,
                                                  argument=f"--set {key}")))
    steps = tuple(name or index for name, index in _STEP.findall(key))
    return Override(key, steps, value, argument)


def apply_overrides(document: Document, overrides: list[Override]) -> Document:
    """The document with each override applied in turn; its values located at their
    arguments. SpecError for a path that cannot be set (through a number, past a list's end,
    an undeclared parameter)."""
    if not overrides or not isinstance(document.data, dict):
        return document
    data = copy.deepcopy(document.data)
    values, keys = dict(document.value_positions), dict(document.key_positions)
    overridden = dict(document.overridden)
    for override in overrides:
        path, created = _set(data, override)
        where = replace(override.location, path=path)
        for table in (values, keys, overridden):  # what the file said there is gone
            for old in [p for p in table if p[:len(path)] == path]:
                del table[old]
        for place in (*created, path):
            overridden[place] = where
    return replace(document, data=data, value_positions=values, key_positions=keys,
                   overridden=overridden,
                   overrides=[*document.overrides, *(o.argument for o in overrides)])


def _set(data: dict[str, Any], override: Override) -> tuple[Path, list[Path]]:
    """Set the override's value in `data`; its path (indexes as numbers) and the mappings it
    created on the way."""
    first = override.steps[0]
    if first in NOT_OVERRIDDEN:
        raise SpecError(Problem((), f"--set cannot change `{first}`",
                                "choose a variant with --variant", location=override.location))
    if first == "params" and len(override.steps) > 1:
        _check_parameter(data.get("params"), override)
    node: Any = data
    path: list[PathItem] = []
    created: list[Path] = []
    for i, step in enumerate(override.steps):
        last = i == len(override.steps) - 1
        if isinstance(node, dict):
            if last:
                if override.value is None and not path:
                    node.pop(step, None)  # `--set schedule=null`: no schedule
                else:
                    node[step] = override.value
                return (*path, step), created
            if node.get(step) is None:
                node[step] = {}
                created.append((*path, step))
            node, path = node[step], [*path, step]
        elif isinstance(node, list):
            index = _index(node, step, tuple(path), override)
            if last:
                if override.value is None:
                    raise SpecError(Problem((), "null cannot remove a list entry",
                                            "give the whole list instead",
                                            location=override.location))
                node[index] = override.value
                return (*path, index), created
            node, path = node[index], [*path, index]
        else:
            raise SpecError(Problem((), f"{_shown(tuple(path))} is {_what(node)}, so it has "
                                    f"no {step!r} to set", f"set {_shown(tuple(path))} "
                                    "itself", location=override.location))
    raise AssertionError("unreachable: an override has at least one step")


def _index(entries: list[Any], step: str, path: Path, override: Override) -> int:
    """The list index a step names; SpecError when it is not one of the list's."""
    if not step.isdigit():
        raise SpecError(Problem((), f"{_shown(path)} is a list, so {step!r} names nothing in "
                                "it", f"give an entry's number, {_shown(path)}.0 to "
                                f"{_shown(path)}.{len(entries) - 1}" if entries else None,
                                location=override.location))
    index = int(step)
    if index >= len(entries):
        raise SpecError(Problem((), f"{_shown(path)} has {len(entries)} "
                                f"entr{'y' if len(entries) == 1 else 'ies'}, so there is no "
                                f"entry {index}", "entries are numbered from 0",
                                location=override.location))
    return index


def _check_parameter(params: Any, override: Override) -> None:
    """`params.NAME` sets a parameter the spec declares (a new one would be used nowhere)."""
    name = override.steps[1]
    names = list(params) if isinstance(params, dict) else []
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=1)
    hint = (f"did you mean {close[0]!r}?" if close else
            f"its parameters are {', '.join(names)}" if names else "declare it under params:")
    raise SpecError(Problem((), f"the spec has no parameter {name!r}", hint,
                            location=override.location))


def _shown(path: Path) -> str:
    return ".".join(str(step) for step in path)


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}, a boolean"
    if isinstance(value, int | float):
        return f"{value}, a number"
    if isinstance(value, str):
        return f"{value[:40]!r}, a string"
    return "null"


__all__ = ["Override", "apply_overrides", "parse_overrides"]
