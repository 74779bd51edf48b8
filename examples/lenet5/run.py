"""LeNet-5 on the digits with the CLI: `dlspec build`, then `dlspec predict` on held-out PNGs.

Runs `dlspec build specs/lenet5.yaml` in a subprocess (check → train → evaluate → export a
verified model.onnx → diagram) and reads the test accuracy from the run's metrics.json. Then
writes the digits of the spec's own test split — the ones training never saw — as 8×8
greyscale PNG files, as a scanner would deliver them, and runs `dlspec predict
RUN/model.onnx FOLDER -o predictions.csv` on that folder (ONNX Runtime only; the PNGs are
resized to 32×32 and normalised with the statistics stored in the ONNX file). Prints some
of the predictions and how many are right.
Usage: python examples/lenet5/run.py [--epochs N] [--out DIR] [--show N]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = ROOT / "specs" / "lenet5.yaml"


def dlspec_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `dlspec ARGS` as a user would (python -m dlspec); exits if it fails."""
    shown = " ".join(str(a) for a in args)
    print(f"$ dlspec {shown}", flush=True)
    done = subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dlspec {args[0]} failed (exit {done.returncode}):\n{done.stderr}")
    return done


def write_held_out(folder: Path) -> dict[str, int]:
    """The spec's test-split digits as 8×8 PNGs in `folder`; file name → true digit.

    The split is the one training used: dlspec.data.split_indices with the spec's fractions
    and seed, over scikit-learn's digits in their stored order.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    import dlspec
    from dlspec.data import split_indices

    spec = dlspec.load(SPEC)
    assert spec.data is not None
    digits = load_digits()
    seed = spec.data.seed if spec.data.seed is not None else spec.train.seed
    _, _, test = split_indices(len(digits.target), spec.data.split, seed)
    assert test is not None
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for index in test.tolist():
        name = f"digit_{index:04d}.png"  # sklearn's index: no hint of the class in the name
        pixels = np.round(digits.images[index] / 16.0 * 255).astype(np.uint8)  # 0..16 → 0..255
        Image.fromarray(pixels, "L").save(folder / name)
        truth[name] = int(digits.target[index])
    return truth


def main() -> None:
    """Build LeNet-5, predict the held-out PNGs with the exported model, compare."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (30)")
    parser.add_argument("--out", type=Path, help="run folder, PNGs and predictions "
                        "(default: a temporary folder)")
    parser.add_argument("--show", type=int, default=12, help="prediction rows to print")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lenet5-"))
    run = out / "run"
    build = ["build", SPEC.relative_to(ROOT), "--out", run, "--overwrite"]
    if args.epochs is not None:
        build += ["--epochs", str(args.epochs)]
    print(dlspec_command(*build).stdout.strip())
    test = json.loads((run / "metrics.json").read_text())["test"]
    print(f"test accuracy {test['accuracy']:.4f}")

    truth = write_held_out(out / "held_out")
    print(f"wrote {len(truth)} held-out test digits as 8×8 PNGs to {out / 'held_out'}")
    predictions = out / "predictions.csv"
    predict = dlspec_command("predict", run / "model.onnx", out / "held_out", "-o", predictions)
    print(predict.stderr.strip())  # predicted N samples with model.onnx on ... in ... s
    with open(predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))
    print(f"{'file':16} {'true':>4} {'class':>5} {'probability':>11}")
    for row in rows[:args.show]:
        print(f"{row['sample']:16} {truth[row['sample']]:>4} {row['class']:>5} "
              f"{float(row['probability']):>11.3f}")
    wrong = [row for row in rows if int(row["class"]) != truth[row["sample"]]]
    for row in wrong[:args.show]:
        print(f"wrong: {row['sample']} is a {truth[row['sample']]}, predicted {row['class']} "
              f"(p {float(row['probability']):.3f})")
    right = len(rows) - len(wrong)
    print(f"predict accuracy {right}/{len(rows)} = {right / len(rows):.4f} "
          f"(build's test accuracy {test['accuracy']:.4f})")


if __name__ == "__main__":
    main()
