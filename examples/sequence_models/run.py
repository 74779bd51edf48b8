"""RNN, LSTM, GRU, bidirectional LSTM and a transformer encoder on three built-in sequence tasks.

Each task is a spec in this folder with an LSTM `encoder` layer: parity.yaml (sequence
classification: the parity of 6 noisy bits), adding.yaml (the adding problem over 25
steps, regression) and sine.yaml (one-step sine forecasting). run.py trains every task once
per encoder of models.yaml, put in place of that layer, and prints the test numbers beside
a baseline that learns nothing (the majority class, the training mean, the last value),
with each run's wall time and its mean seconds per epoch (metrics.csv's `seconds`).
Usage: python examples/sequence_models/run.py [--epochs N] [--out DIR] [--tasks T ...]
       [--models M ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

import dlspec

HERE = Path(__file__).resolve().parent
TASKS = ("parity", "adding", "sine")
MODELS: dict[str, list[Any]] = yaml.safe_load((HERE / "models.yaml").read_text())


def spec_for(task: str, model: str, epochs: int | None) -> dlspec.spec.model.Spec:
    """The task's spec with its `encoder` layer replaced by the model's layers."""
    path = HERE / f"{task}.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"] = f"{task}_{model}"
    network = []
    for layer in data["network"]:
        is_encoder = isinstance(layer, dict) and layer.get("name") == "encoder"
        network += MODELS[model] if is_encoder else [layer]
    data["network"] = network
    if epochs is not None:
        data["train"]["epochs"] = epochs
    return dlspec.loads(yaml.safe_dump(data, sort_keys=False), f"{path.name} with {model}")


def baseline(task: str, data: Any) -> dict[str, float]:
    """Test numbers of a predictor that learns nothing about the sequences."""
    target = data.test.target.float()
    if task == "parity":  # the training split's majority class
        majority = data.train.target.mode().values
        return {"accuracy": (data.test.target == majority).float().mean().item()}
    if task == "adding":  # the training split's mean target, whatever the sequence
        guess = data.train.target.float().mean().expand_as(target)
    else:  # tomorrow is like today: the window's last (noisy) value
        (window,) = data.test.inputs.values()
        guess = window[:, -1, :]
    return {"mse": torch.mean((guess - target) ** 2).item(),
            "mae": torch.mean((guess - target).abs()).item()}


def seconds_per_epoch(run_dir: Path) -> float:
    """The mean of the `seconds` column of the run's metrics.csv (training + validation)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return sum(seconds) / len(seconds)


def row(task: str, model: str, numbers: dict[str, float], seconds: float | None = None,
        per_epoch: float | None = None) -> str:
    """One line of the results table; '-' where a number does not apply."""
    shown = [f"{numbers['accuracy']:.3f}" if "accuracy" in numbers else "-"] + [
        f"{numbers[k]:.2e}" if k in numbers else "-" for k in ("mse", "mae")]
    time_shown = f"{seconds:.1f}" if seconds is not None else "-"
    epoch_shown = f"{per_epoch:.3f}" if per_epoch is not None else "-"
    return (f"{task:7} {model:12} {shown[0]:>8} {shown[1]:>8} {shown[2]:>8} {time_shown:>6} "
            f"{epoch_shown:>7}")


def main() -> None:
    """Train each model on each task; print test accuracy (parity) or MSE/MAE."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override every spec's epochs")
    parser.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=TASKS)
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=tuple(MODELS))
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sequence_models-"))
    print(f"{'task':7} {'model':12} {'accuracy':>8} {'mse':>8} {'mae':>8} {'sec':>6} "
          f"{'s/epoch':>7}")
    for task in args.tasks:
        data = None
        for model in args.models:
            began = time.perf_counter()
            result = dlspec.train_spec(spec_for(task, model, args.epochs), out / task / model,
                                       overwrite=True)
            data = result.data
            print(row(task, model, result.test, time.perf_counter() - began,
                      seconds_per_epoch(result.run_dir)), flush=True)
        if data is not None:
            print(row(task, "baseline", baseline(task, data)), flush=True)
    print(f"run folders in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
