"""The `optimizer` section as a torch.optim optimizer, with parameter groups chosen by pattern.

A `param_groups` entry selects parameters by glob patterns (`fnmatch`) over names from
`model.named_parameters()`: a pattern selects a parameter when it matches the parameter's
name (`layer4.0.conv1.weight`) or the name of a module holding it (`layer4`, `layer4.0`),
so `layer4`, `layer4.*` and `*.bias` all work. A parameter goes to the first group with a
matching pattern, the rest to the default group. The torch optimizer's groups are the
default group first (index 0, the section's lr and weight_decay), then one per spec group
in spec order — kept even when empty, so group i + 1 is always `param_groups[i]`. Each group
carries a `name` ("default", "param_groups[0]", ...) for logging. Frozen parameters
(`requires_grad=False`) are left out of every group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dlspec.errors import Path, Problem, SpecError
from dlspec.layers.registry import suggest
from dlspec.spec.sections import AdamOptimizer, Optimizer, ParamGroup
from dlspec.train.patterns import pattern_hint, selects

# Spec name -> PyTorch class; the sections' field names are the classes' keyword names.
_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
}
OPTIMIZER_TYPES = tuple(_OPTIMIZERS)


def make_optimizer(section: Optimizer | Mapping[str, Optimizer] | None, model: nn.Module, *,
                   path: Path = ("optimizer",)) -> torch.optim.Optimizer:
    """The torch optimizer of `model`'s trainable parameters; no section means Adam(lr=1e-3).

    Example:
        >>> section = SgdOptimizer(lr=0.1, momentum=0.9, param_groups=[
        ...     ParamGroup(layers=["layer4.*"], lr=0.01)])
        >>> optimizer = make_optimizer(section, resnet)
        >>> [g["lr"] for g in optimizer.param_groups]
        [0.1, 0.01]
    """
    if section is None:
        section = AdamOptimizer()
    if isinstance(section, Mapping):
        raise SpecError(Problem(path, "one optimizer per network is for specs that train "
                                "several networks together",
                                "give one optimizer, e.g. optimizer: adam"))
    groups = _param_groups(section.param_groups, model, path)
    options = section.model_dump(exclude={"type", "param_groups"})
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}  # betas
    return _OPTIMIZERS[section.type](groups, **options)


def make_optimizers(section: Optimizer | Mapping[str, Optimizer] | None,
                    models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per network: from a mapping network -> optimizer, or the same for all."""
    if not isinstance(section, Mapping):
        return {name: make_optimizer(section, model) for name, model in models.items()}
    problems = [
        Problem(("optimizer", name), f"there is no network {name!r}",
                suggest(name, list(models)) or f"networks: {', '.join(models)}")
        for name in section if name not in models
    ] + [
        Problem(("optimizer",), f"no optimizer for network {name!r}",
                f"add `{name}: adam` (or another optimizer)")
        for name in models if name not in section
    ]
    if problems:
        raise SpecError(problems)
    return {name: make_optimizer(section[name], model, path=("optimizer", name))
            for name, model in models.items()}


def _param_groups(specs: list[ParamGroup], model: nn.Module, path: Path) -> list[dict[str, Any]]:
    """The default group and one per spec group, each holding its trainable parameters."""
    named = list(model.named_parameters())
    _check_patterns(specs, [name for name, _ in named], path)
    groups: list[dict[str, Any]] = [{"params": [], "name": "default"}]
    for i, spec in enumerate(specs):
        settings = {k: v for k, v in (("lr", spec.lr), ("weight_decay", spec.weight_decay))
                    if v is not None}
        groups.append({"params": [], "name": f"param_groups[{i}]", **settings})
    trainable = [(name, p) for name, p in named if p.requires_grad]
    if not trainable:
        raise SpecError(Problem(path, "nothing to train: the network has no trainable "
                                "parameters", "check transfer.freeze"))
    for name, parameter in trainable:
        index = next((i + 1 for i, spec in enumerate(specs)
                      if any(selects(pattern, name) for pattern in spec.layers)), 0)
        groups[index]["params"].append(parameter)
    return groups


def _check_patterns(specs: list[ParamGroup], names: list[str], path: Path) -> None:
    """SpecError for every pattern that selects no parameter, with a did-you-mean."""
    problems = [
        Problem((*path, "param_groups", i, "layers"),
                f"pattern {pattern!r} matches no parameter", pattern_hint(pattern, names))
        for i, spec in enumerate(specs) for pattern in spec.layers
        if not any(selects(pattern, name) for name in names)
    ]
    if problems:
        raise SpecError(problems)
