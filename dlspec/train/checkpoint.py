"""Checkpoints a killed run can resume from: weights in safetensors, state beside them.

A checkpoint is `checkpoint.safetensors` (the model), `checkpoint.state.pt` (optimizer,
schedule, RNG states and history; loaded weights-only, so it can hold no code) and
`checkpoint.complete`, written last. Each file is written to a temporary name in the same
folder, fsync'ed and renamed into place, so a crash leaves either the previous checkpoint
or the new one — never a torn file. `--resume` trusts only a checkpoint whose marker names
the same epoch as its state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from dlspec.errors import SpecError

WEIGHTS, STATE, MARKER = "checkpoint.safetensors", "checkpoint.state.pt", "checkpoint.complete"


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file through `write(temporary_path)`, then fsync and rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's weights as safetensors (shared tensors handled), atomically."""
    write_atomically(path, lambda tmp: save_model(model, str(tmp)))


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Weights, then state, then the completion marker naming the state's epoch."""
    save_weights(model, folder / WEIGHTS)
    write_atomically(folder / STATE, lambda tmp: torch.save(state, tmp))
    marker = json.dumps({"epoch": state["epoch"]})
    write_atomically(folder / MARKER, lambda tmp: tmp.write_text(marker))


def load_checkpoint(folder: Path, model: torch.nn.Module) -> dict[str, Any] | None:
    """Restore the latest complete checkpoint into `model`; return its state (None: none)."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        epoch = json.loads(marker.read_text())["epoch"]
        state: dict[str, Any] = torch.load(folder / STATE, weights_only=True)
        if state.get("epoch") != epoch:
            raise ValueError(f"state is of epoch {state.get('epoch')}, marker says {epoch}")
        missing, unexpected = load_model(model, str(folder / WEIGHTS), strict=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise SpecError(f"{folder}: the checkpoint cannot be resumed ({exc}); remove the "
                        "checkpoint files to start over") from None
    if missing or unexpected:
        raise SpecError(f"{folder}: the checkpoint does not match this spec's network "
                        f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return state
