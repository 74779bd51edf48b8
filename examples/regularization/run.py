"""Overfitting 179 digits, and what dropout, L2, weight decay, augmentation and early stopping do.

Trains examples/regularization/digits_small.yaml (a small CNN on 10% of the 8×8 digits)
as written and with each change of variants.yaml, then measures the weights each run
keeps (the epoch of lowest val_loss, as dlspec always does) on the training and the test
split. Prints epochs run, the best epoch, training and test accuracy, their gap, the test
loss and the L2 norm of the weights.
Usage: python examples/regularization/run.py [--epochs N] [--out DIR] [--variants V ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

import dlspec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "digits_small.yaml"
VARIANTS: dict[str, dict[str, Any]] = yaml.safe_load((HERE / "variants.yaml").read_text())


def spec_for(variant: str, epochs: int | None) -> dlspec.spec.model.Spec:
    """digits_small.yaml with the sections of `variant` (train: keys added, others replaced)."""
    data = yaml.safe_load(SPEC.read_text())
    data["name"] = f"digits_small_{variant}"
    for section, value in VARIANTS[variant].items():
        if section == "train":
            data["train"].update(value)
        else:
            data[section] = value
    if epochs is not None:
        data["train"]["epochs"] = epochs
    return dlspec.loads(yaml.safe_dump(data, sort_keys=False), f"{SPEC.name} with {variant}")


def accuracy(model: torch.nn.Module, split: Any) -> float:
    """The model's accuracy on a whole split (no augmentation, dropout off)."""
    model.eval()
    (inputs,) = split.inputs.values()
    with torch.inference_mode():
        return (model(inputs).argmax(dim=1) == split.target).float().mean().item()


def weight_norm(model: torch.nn.Module) -> float:
    """√Σw² over the weights (parameters of 2 or more dimensions; biases left out)."""
    weights = [p.detach() for p in model.parameters() if p.ndim >= 2]
    return torch.stack([w.square().sum() for w in weights]).sum().sqrt().item()


def main() -> None:
    """Train each variant; print training vs test accuracy and the gap."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (100)")
    parser.add_argument("--out", type=Path, help="run folders (default: a temporary folder)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                        default=tuple(VARIANTS), help="variants to compare (default: all)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="regularization-"))
    print(f"{'variant':15} {'epochs':>6} {'best':>5} {'train_acc':>9} {'test_acc':>8} "
          f"{'gap':>6} {'test_loss':>9} {'weight_norm':>11}")
    for variant in args.variants:
        result = dlspec.train_spec(spec_for(variant, args.epochs), out / variant)
        train, test = accuracy(result.model, result.data.train), result.test["accuracy"]
        print(f"{variant:15} {len(result.fit.history):>6} {result.fit.best_epoch:>5} "
              f"{train:>9.3f} {test:>8.3f} {train - test:>6.3f} {result.test['loss']:>9.3f} "
              f"{weight_norm(result.model):>11.2f}", flush=True)
    print(f"run folders in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
