"""Spec parameters and variants, resolved on the YAML document before validation.

```yaml
params: {num_classes: 1000, size: 224}      # $num_classes, $(size // 2) in inputs and network
inputs: {image: {shape: [3, $size, $size]}}
network: [..., {name: fc, linear: $num_classes}]
variants:
  digits:                                   # dlspec train SPEC --variant digits
    description: the same network at 32×32 on the built-in digits, in a minute
    params: {num_classes: 10, size: 32}
    data: {dataset: digits, resize: [32, 32]}
    train: {epochs: 5}
```

A variant sets parameters (merged over the spec's) and changes sections field by field:
a mapping merges into the spec's mapping key by key, at every depth (`train: {epochs: 3}`
changes the epochs and keeps every other `train` field; `optimizer: {lr: 0.05}` keeps the
optimizer's type); a list or a single value replaces what the spec says; `null` removes a
whole section (`augment: null`) and inside one means what null means in the file (for most
keys their default; `y_key: null` is no targets). A mapping that changes what kind of thing
it describes replaces the spec's whole: a different `type:` (`optimizer: {type: adam, lr:
0.001}` over an sgd optimizer: sgd's momentum does not leak into adam) or, in `data:`, a
different source (`dataset`, `csv`, `npz`, `image_folder`) or built-in dataset. `task`,
`loss`, `optimizer` and `schedule` written as a bare name in the spec (`loss: cross_entropy`)
merge as `{type: NAME}`. The selected variant's values keep their own lines, so an error in a
variant points into the variant. `params` are substituted in `inputs`, `network`, `networks`
and `outputs` — not inside `blocks:` definitions, whose `$names` are the block's own
parameters (pass a spec parameter to a block as an argument).

Command-line overrides (`--set KEY=VALUE`, dlspec.spec.overrides) apply after the variant
and before the parameters are substituted.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from dlspec.errors import Path, Problem, SpecError
from dlspec.spec import expr
from dlspec.spec.load import Document
from dlspec.spec.overrides import Overrides, apply_overrides, parse_overrides

SUBSTITUTED = ("inputs", "network", "networks", "outputs")
NOT_IN_VARIANTS = ("dlspec", "name", "variants", "blocks")
# sections a bare name stands for `{type: NAME}` in
NAMED_BY_TYPE = ("task", "loss", "optimizer", "schedule")
# the keys that say where `data:` comes from: changing one replaces the section
DATA_SOURCES = ("dataset", "csv", "npz", "image_folder", "shards")


def variant_names(document: Document) -> list[str]:
    """The variants a spec document declares (none when it has no valid `variants:`)."""
    variants = document.data.get("variants") if isinstance(document.data, dict) else None
    return [str(k) for k in variants] if isinstance(variants, dict) else []


def resolve(document: Document, variant: str | None = None,
            overrides: Overrides | None = None) -> Document:
    """The document with `variant` merged in (None: the base spec), then the `overrides`
    (`["optimizer.lr=1e-3"]`, see dlspec.spec.overrides) applied and `params` substituted."""
    data = document.data
    if not isinstance(data, dict):
        return document
    if variant is not None:
        document = _merged(document, variant)
    document = apply_overrides(document, parse_overrides(overrides))
    data = document.data
    params = data.get("params")
    if params is None:
        return document
    if not isinstance(params, dict):
        return document  # validation reports it at `params`
    problems: list[Problem] = []

    def report(path: tuple[Any, ...], message: str) -> None:
        hint = "declare it under params:" if message.startswith("unknown parameter") else None
        problems.append(Problem(path, message, hint))

    resolved = dict(data)
    for key in SUBSTITUTED:
        if key in data:
            resolved[key] = expr.substitute(data[key], params, report, (key,))
    if problems:
        raise SpecError(problems)  # located by the caller (api.located)
    return replace(document, data=resolved)


def _merged(document: Document, variant: str) -> Document:
    data = document.data
    variants = data.get("variants")
    names = list(variants) if isinstance(variants, dict) else []
    if variant not in names:
        close = difflib.get_close_matches(variant, names, n=1)
        hint = (f"did you mean {close[0]!r}?" if close else
                f"the variants are {', '.join(names)}" if names else "add a `variants:` section")
        raise SpecError(Problem(("variants",) if names else (), f"spec {data.get('name')!r} "
                                f"has no variant {variant!r}", hint))
    changes = variants[variant]
    if not isinstance(changes, dict):
        raise SpecError(Problem(("variants", variant),
                                "a variant is a mapping of the sections it changes"))
    for key in changes:
        if key in NOT_IN_VARIANTS:
            raise SpecError(Problem(("variants", variant, key), f"a variant cannot change "
                                    f"`{key}`", "variants change params and sections; blocks "
                                    "stay shared", on_key=True))
    if isinstance(data.get("params"), dict) and isinstance(changes.get("params"), dict):
        for name in changes["params"]:
            if name not in data["params"]:
                raise SpecError(Problem(("variants", variant, "params", name), f"the spec has "
                                        f"no parameter {name!r}", "declare it under params:",
                                        on_key=True))
    replaced: list[Path] = []
    merged = dict(data)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)  # `augment: null`: the variant has no such section
            replaced.append((key,))
        else:
            merged[key] = _merge(data[key], value, (key,), replaced) if key in data else value
    merged["name"] = f"{data.get('name')}_{variant}"
    values, keys = dict(document.value_positions), dict(document.key_positions)
    base = ("variants", variant)
    for table in (values, keys):
        for path in [p for p in table if any(p[:len(r)] == r for r in replaced)]:
            del table[path]  # the spec's values the variant replaced
        for path, position in list(table.items()):  # the variant's values keep their lines
            if path[:2] == base and len(path) > 2:
                table[path[2:]] = position
    return replace(document, data=merged, value_positions=values, key_positions=keys,
                   variant=variant)


def _merge(base: Any, change: Any, path: Path, replaced: list[Path]) -> Any:
    """`change` merged into `base` key by key; a list, a single value or a mapping of
    another kind replaces (its path is added to `replaced`)."""
    if (len(path) == 1 and path[0] in NAMED_BY_TYPE and isinstance(base, str)
            and isinstance(change, dict) and "type" not in change):
        base = {"type": base}  # `loss: cross_entropy` is `loss: {type: cross_entropy}`
    if not isinstance(base, dict) or not isinstance(change, dict) or _new_kind(base, change,
                                                                               path):
        replaced.append(path)
        return change
    merged = dict(base)
    for key, value in change.items():
        merged[key] = (_merge(base[key], value, (*path, key), replaced) if key in base
                       else value)
    return merged


def _new_kind(base: dict[str, Any], change: dict[str, Any], path: Path) -> bool:
    """Whether `change` describes another kind of thing than `base`: another `type`, or
    another data source; its fields then mean nothing for the base's."""
    if "type" in change and change["type"] != base.get("type"):
        return True
    if path == ("data",):
        return _source(change) not in (None, _source(base))
    return False


def _source(data: dict[str, Any]) -> tuple[str, Any] | None:
    """Where a `data:` section reads: its source key (and which built-in dataset)."""
    key = next((k for k in DATA_SOURCES if k in data), None)
    return None if key is None else (key, data[key] if key == "dataset" else None)


__all__ = ["resolve", "variant_names"]
