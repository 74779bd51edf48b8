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

A variant sets parameters (merged over the spec's) and replaces whole sections (`data`,
`train`, ... as the variant writes them; `null` removes one). The selected variant's values
keep their own lines, so an error in a variant points into the variant. `params` are
substituted in `inputs`, `network`, `networks` and `outputs` — not inside `blocks:`
definitions, whose `$names` are the block's own parameters (pass a spec parameter to a
block as an argument).
"""

from __future__ import annotations

import difflib
from typing import Any

from dlspec.errors import Problem, SpecError
from dlspec.spec import expr
from dlspec.spec.load import Document

SUBSTITUTED = ("inputs", "network", "networks", "outputs")
NOT_IN_VARIANTS = ("dlspec", "name", "variants", "blocks")


def variant_names(document: Document) -> list[str]:
    """The variants a spec document declares (none when it has no valid `variants:`)."""
    variants = document.data.get("variants") if isinstance(document.data, dict) else None
    return [str(k) for k in variants] if isinstance(variants, dict) else []


def resolve(document: Document, variant: str | None = None) -> Document:
    """The document with `variant` merged in (None: the base spec) and `params` substituted."""
    data = document.data
    if not isinstance(data, dict):
        return document
    if variant is not None:
        document = _merged(document, variant)
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
    return Document(document.file, resolved, document.value_positions, document.key_positions)


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
    overrides = variants[variant]
    if not isinstance(overrides, dict):
        raise SpecError(Problem(("variants", variant),
                                "a variant is a mapping of the sections it changes"))
    for key in overrides:
        if key in NOT_IN_VARIANTS:
            raise SpecError(Problem(("variants", variant, key), f"a variant cannot change "
                                    f"`{key}`", "variants change params and sections; blocks "
                                    "stay shared", on_key=True))
    values, keys = dict(document.value_positions), dict(document.key_positions)
    base = ("variants", variant)
    for table in (values, keys):  # the variant's values keep their own lines
        for path, position in list(table.items()):
            if path[:2] == base and len(path) > 2:
                table[path[2:]] = position
    merged = {**data, **overrides, "name": f"{data.get('name')}_{variant}"}
    if isinstance(data.get("params"), dict) and isinstance(overrides.get("params"), dict):
        merged["params"] = {**data["params"], **overrides["params"]}
        for name in overrides["params"]:
            if name not in data["params"]:
                raise SpecError(Problem(("variants", variant, "params", name), f"the spec has "
                                        f"no parameter {name!r}", "declare it under params:",
                                        on_key=True))
    return Document(document.file, {k: v for k, v in merged.items() if v is not None},
                    values, keys)




__all__ = ["resolve", "variant_names"]
