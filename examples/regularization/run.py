"""A CNN memorises noisy labels; what dropout, L1, L2, weight decay, augmentation do about it.

Writes digits_noisy.npz: scikit-learn's 8×8 digits with a share (--label-noise, 30%) of the
training and validation labels replaced by a random other digit; test labels stay clean, so
test accuracy measures what was learned about digits. (The split is dlspec's own —
`dlspec.data.split_indices` with the spec's fractions and seed — so run.py knows which
samples will be test samples.) Then trains examples/regularization/digits_small.yaml (a
small CNN on 30% of the digits: 540 images) as written and with each change of
variants.yaml (early stopping among them), and measures two sets of weights per run: the
last epoch's (checkpoint.safetensors) and the ones dlspec keeps (model.safetensors, the
epoch of lowest val_loss). Prints, for the last epoch, training and validation accuracy
against the (noisy) labels they were given, their gap, the clean test accuracy, the L2 norm
of the weights and the share of weights that are (nearly) zero; and the kept weights' test
accuracy.
Usage: python examples/regularization/run.py [--epochs N] [--out DIR] [--variants V ...]
       [--label-noise F]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_model

import dlspec

HERE = Path(__file__).resolve().parent
SPEC = HERE / "digits_small.yaml"
VARIANTS: dict[str, dict[str, Any]] = yaml.safe_load((HERE / "variants.yaml").read_text())
NEAR_ZERO = 1e-3  # |w| below this counts as pruned by L1


def write_noisy_digits(path: Path, noise: float, seed: int = 0) -> int:
    """The digits as an .npz with `noise` of the training and validation labels changed to
    a random other class (test labels untouched); how many labels were changed."""
    from sklearn.datasets import load_digits

    from dlspec.data import split_indices

    spec = dlspec.load(SPEC)
    assert spec.data is not None
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    y = digits.target.copy()
    split_seed = spec.data.seed if spec.data.seed is not None else spec.train.seed
    train, val, _ = split_indices(len(y), spec.data.split, split_seed)
    seen = torch.cat([train, val] if val is not None else [train]).numpy()
    rng = np.random.default_rng(seed)
    changed = rng.choice(seen, size=round(noise * len(seen)), replace=False)
    y[changed] = (y[changed] + rng.integers(1, 10, len(changed))) % 10  # another class
    np.savez(path, x=x, y=y)
    return len(changed)


def spec_for(variant: str, epochs: int | None, folder: Path) -> dlspec.spec.model.Spec:
    """digits_small.yaml with the sections of `variant` (train: keys added, others replaced),
    written into `folder` (beside digits_noisy.npz) and loaded from there."""
    data = yaml.safe_load(SPEC.read_text())
    data["name"] = f"digits_small_{variant}"
    for section, value in VARIANTS[variant].items():
        if section == "train":
            data["train"].update(value)
        else:
            data[section] = value
    if epochs is not None:
        data["train"]["epochs"] = epochs
    path = folder / f"digits_small_{variant}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dlspec.load(path)


def accuracy(model: torch.nn.Module, split: Any) -> float:
    """The model's accuracy on a whole split (no augmentation, dropout off)."""
    model.eval()
    (inputs,) = split.inputs.values()
    with torch.inference_mode():
        return (model(inputs).argmax(dim=1) == split.target).float().mean().item()


def weights(model: torch.nn.Module) -> torch.Tensor:
    """Every weight (parameters of 2 or more dimensions; biases left out), flattened."""
    return torch.cat([p.detach().flatten() for p in model.parameters() if p.ndim >= 2])


def main() -> None:
    """Train each variant; print training vs validation vs test accuracy and the gap."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (100)")
    parser.add_argument("--out", type=Path, help="data, specs and run folders (default: a "
                        "temporary folder)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                        default=tuple(VARIANTS), help="variants to compare (default: all)")
    parser.add_argument("--label-noise", type=float, default=0.3,
                        help="share of training and validation labels changed (0.3)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="regularization-"))
    out.mkdir(parents=True, exist_ok=True)
    changed = write_noisy_digits(out / "digits_noisy.npz", args.label_noise)
    print(f"changed {changed} training and validation labels", file=sys.stderr)
    print(f"{'variant':15} {'epochs':>6} {'train_acc':>9} {'val_acc':>7} {'gap':>6} "
          f"{'test_acc':>8} {'best':>4} {'kept_test':>9} {'weight_norm':>11} {'zero%':>6}")
    for variant in args.variants:
        result = dlspec.train_spec(spec_for(variant, args.epochs, out), out / variant,
                                   overwrite=True)
        data, kept = result.data, result.test["accuracy"]
        model = result.model  # now the last epoch's weights, from the latest checkpoint
        load_model(model, str(result.run_dir / "checkpoint.safetensors"))
        train, val, test = (accuracy(model, s) for s in (data.train, data.val, data.test))
        last = weights(model)
        print(f"{variant:15} {len(result.fit.history):>6} {train:>9.3f} {val:>7.3f} "
              f"{train - val:>6.3f} {test:>8.3f} {result.fit.best_epoch:>4} {kept:>9.3f} "
              f"{last.norm().item():>11.2f} "
              f"{100 * (last.abs() < NEAR_ZERO).float().mean().item():>6.1f}", flush=True)
    print(f"run folders in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
