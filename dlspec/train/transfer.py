"""Transfer learning: start from another run's weights, load what fits, freeze what is asked.

`transfer: {init_from, layers, freeze, strict}`. Weights come from a safetensors file (or a
run folder's model.safetensors). Each of the model's tensors that `layers` selects is loaded
when the file has it with the same shape; otherwise it is skipped with the reason, and
`strict: true` turns any skip into an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlspec.errors import Problem, SpecError
from dlspec.spec.sections import TransferConfig
from dlspec.train.patterns import pattern_hint, selects


@dataclass
class TransferReport:
    """What `transfer` did: tensors loaded, skipped (with why) and frozen."""

    source: Path
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short account for report.md and the console."""
        out = [f"Transfer from {self.source}: {len(self.loaded)} tensors loaded, "
               f"{len(self.skipped)} skipped, {len(self.frozen)} parameters frozen."]
        out += [f"- skipped {name}: {why}" for name, why in self.skipped.items()]
        return out


def apply_transfer(model: torch.nn.Module, transfer: TransferConfig,
                   base_dir: Path) -> TransferReport:
    """Load the selected weights into `model` and freeze the `freeze` layers."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    source = _source(transfer.init_from, base_dir)
    try:
        weights = load_file(str(source))
    except (OSError, SafetensorError) as exc:
        raise SpecError(Problem(("transfer", "init_from"), f"cannot read {source}: {exc}",
                                "give a model.safetensors written by `dlspec train`")) from None
    state = model.state_dict()
    names = list(state)
    _check_patterns(transfer.layers, names, "layers")
    _check_patterns(transfer.freeze, names, "freeze")
    report = TransferReport(source)
    chosen = {}
    for name, tensor in state.items():
        if not any(selects(p, name) for p in transfer.layers):
            continue
        if name not in weights:
            report.skipped[name] = "missing from the checkpoint"
        elif weights[name].shape != tensor.shape:
            report.skipped[name] = (f"shape {tuple(weights[name].shape)} in the checkpoint, "
                                    f"{tuple(tensor.shape)} here")
        elif weights[name].dtype != tensor.dtype:  # loading would convert it silently
            report.skipped[name] = (f"{_dtype(weights[name].dtype)} in the checkpoint, "
                                    f"{_dtype(tensor.dtype)} here")
        else:
            chosen[name] = weights[name]
            report.loaded.append(name)
    if transfer.strict and report.skipped:
        first, why = next(iter(report.skipped.items()))
        raise SpecError(Problem(("transfer", "strict"), f"{len(report.skipped)} selected "
                                f"tensors cannot be loaded, e.g. {first}: {why}",
                                "narrow `layers`, or set strict: false"))
    model.load_state_dict(chosen, strict=False)
    for name, parameter in model.named_parameters():
        if any(selects(p, name) for p in transfer.freeze):
            parameter.requires_grad_(False)
            report.frozen.append(name)
    return report


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _source(path: str, base_dir: Path) -> Path:
    """The weights file, inside the spec's folder (a run folder means its model.safetensors)."""
    from dlspec.spec.paths import resolve_inside

    candidate = resolve_inside(base_dir, path, ("transfer", "init_from"))
    if candidate.is_dir():
        candidate = resolve_inside(base_dir, f"{path.rstrip('/')}/model.safetensors",
                                   ("transfer", "init_from"))
    if candidate.is_file():
        return candidate
    raise SpecError(Problem(("transfer", "init_from"), f"no weights at {path!r} (looked in "
                            f"{base_dir}, the spec's folder)",
                            "point it at a run folder or its model.safetensors, relative to "
                            "the spec"))


def _check_patterns(patterns: list[str], names: list[str], key: str) -> None:
    problems = [Problem(("transfer", key, i), f"pattern {pattern!r} matches no layer",
                        pattern_hint(pattern, names))
                for i, pattern in enumerate(patterns)
                if not any(selects(pattern, name) for name in names)]
    if problems:
        raise SpecError(problems)
