"""Train on a folder of pictures with `dlspec build`, then `dlspec predict` on new pictures.

First writes a small picture collection the way a photo set is usually stored: images/
holds one sub-folder per class (three, five, eight), each with PNG files of scikit-learn
digits of that class, upscaled to random sizes between 40 and 64 pixels, drawn in a dark colour
on a light one with a little noise. Then copies small_photos.yaml beside it
and runs `dlspec build` on it in a subprocess (the spec's `data: {image_folder: images,
resize: [32, 32], normalize: auto}` reads the folder; its `augment:` shifts, turns and
recolours the training batches), and reports the test accuracy from the run's metrics.json.
Finally writes new pictures of digits the folder does not hold into new_images/ (one flat
folder, neutral file names) and runs `dlspec predict RUN/model.onnx new_images -o
preds.csv` on them — ONNX Runtime only, no torch — and reports how many it got right.
Nothing is downloaded.
Usage: python examples/image_folder/run.py [--epochs N] [--out DIR] [--per-class N]
       [--new-per-class N]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = HERE / "small_photos.yaml"
CLASSES = {"three": 3, "five": 5, "eight": 8}  # sub-folder name → digit drawn


def picture(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One 8×8 digit (values in [0, 1]) as an RGB picture of random size and colours."""
    from PIL import Image

    size = int(rng.integers(40, 65))  # pictures of a photo set differ in size
    ink = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC), dtype=np.float32)[:, :, None] / 255
    # dark ink of some colour on paper of another, as photographed in varying light
    background, colour = rng.uniform(140, 255, 3), rng.uniform(0, 110, 3)
    pixels = background * (1 - ink) + colour * ink + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def class_digits(name: str) -> np.ndarray:
    """scikit-learn's 8×8 digits of the class `name` (in their stored order), in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[digits.target == CLASSES[name]] / 16.0


def write_pictures(folder: Path, per_class: int, seed: int = 0) -> dict[str, int]:
    """Write `per_class` PNG pictures per class into folder/<class>/; count per class.

    Each class's first `per_class` digits are used; write_new_pictures takes the next ones.
    """
    rng = np.random.default_rng(seed)
    counts = {}
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        images = class_digits(name)[:per_class]
        for i, ink in enumerate(images):
            picture(ink, rng).save(folder / name / f"{name}_{i:03d}.png")
        counts[name] = len(images)
    return counts


def write_new_pictures(folder: Path, skip: int, per_class: int, seed: int = 1
                       ) -> dict[str, str]:
    """Pictures of digits the training folder does not hold (each class's digits after the
    first `skip`), in one flat folder under neutral, shuffled names; file name → class."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = [(name, ink) for name in CLASSES
                for ink in class_digits(name)[skip:skip + per_class]]
    truth = {}
    for i, position in enumerate(rng.permutation(len(pictures))):
        name, ink = pictures[position]
        file = f"new_{i:03d}.png"
        picture(ink, rng).save(folder / file)
        truth[file] = name
    return truth


def main() -> None:
    """Write the picture folder, build the spec on it with the CLI, report the test accuracy;
    then predict new pictures with the exported model and report how many are right."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (30)")
    parser.add_argument("--out", type=Path, help="where the pictures, spec and run go "
                        "(default: a temporary folder)")
    parser.add_argument("--per-class", type=int, default=80,
                        help="pictures per class (default 80; each class has ~175 digits)")
    parser.add_argument("--new-per-class", type=int, default=60,
                        help="new pictures per class for `dlspec predict` (default 60)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="image_folder-"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "images", ignore_errors=True)
    counts = write_pictures(out / "images", args.per_class)
    print(f"wrote {sum(counts.values())} pictures to {out / 'images'}: "
          + ", ".join(f"{name} {count}" for name, count in counts.items()))
    spec = shutil.copy(SPEC, out / SPEC.name)  # `image_folder: images` is read beside it
    build = ["build", spec, "--out", out / "run", "--overwrite"]
    if args.epochs is not None:
        build += ["--epochs", str(args.epochs)]
    print(dlspec_command(*build).stdout.strip())
    test = json.loads((out / "run" / "metrics.json").read_text())["test"]
    print(f"test accuracy {test['accuracy']:.3f} (chance {1 / len(CLASSES):.3f}); "
          f"report: {out / 'run' / 'report.md'}")

    shutil.rmtree(out / "new_images", ignore_errors=True)
    truth = write_new_pictures(out / "new_images", args.per_class, args.new_per_class)
    print(f"wrote {len(truth)} new pictures (digits not in images/) to {out / 'new_images'}")
    predictions = out / "preds.csv"
    predict = dlspec_command("predict", out / "run" / "model.onnx", out / "new_images",
                             "-o", predictions)
    print(predict.stderr.strip())
    with open(predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))
    right = sum(row["class"] == truth[row["sample"]] for row in rows)
    print(f"{'class':8} {'pictures':>8} {'right':>6}")
    for name in CLASSES:
        mine = [row for row in rows if truth[row["sample"]] == name]
        print(f"{name:8} {len(mine):>8} {sum(row['class'] == name for row in mine):>6}")
    print(f"predict accuracy {right}/{len(rows)} = {right / len(rows):.3f} on new pictures "
          f"(chance {1 / len(CLASSES):.3f})")


def dlspec_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `dlspec ARGS` as a user would (python -m dlspec); exits if it fails."""
    print("$ dlspec " + " ".join(map(str, args)), flush=True)
    done = subprocess.run([sys.executable, "-m", "dlspec", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dlspec {args[0]} failed (exit {done.returncode}):\n{done.stderr}")
    return done


if __name__ == "__main__":
    main()
