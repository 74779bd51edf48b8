"""Train on a folder of pictures: one sub-folder per class, images of any size, `dlspec build`.

First writes a small picture collection the way a photo set is usually stored: images/
holds one sub-folder per class (three, five, eight), each with PNG files of scikit-learn
digits of that class, upscaled to random sizes between 40 and 64 pixels, drawn in a dark colour
on a light one with a little noise. Then copies small_photos.yaml beside it
and runs `dlspec build` on it in a subprocess (the spec's `data: {image_folder: images,
resize: [32, 32], normalize: auto}` reads the folder), and reports the test accuracy from
the run's metrics.json. Nothing is downloaded.
Usage: python examples/image_folder/run.py [--epochs N] [--out DIR] [--per-class N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = HERE / "small_photos.yaml"
CLASSES = {"three": 3, "five": 5, "eight": 8}  # sub-folder name → digit drawn


def write_pictures(folder: Path, per_class: int, seed: int = 0) -> dict[str, int]:
    """Write `per_class` PNG pictures per class into folder/<class>/; count per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    counts = {}
    for name, digit in CLASSES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        images = digits.images[digits.target == digit][:per_class] / 16.0  # (n, 8, 8) in [0, 1]
        for i, ink in enumerate(images):
            size = int(rng.integers(40, 65))  # pictures of a photo set differ in size
            ink = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize(
                (size, size), Image.Resampling.BICUBIC), dtype=np.float32)[:, :, None] / 255
            # dark ink of some colour on paper of another, as photographed in varying light
            background, colour = rng.uniform(140, 255, 3), rng.uniform(0, 110, 3)
            pixels = background * (1 - ink) + colour * ink + rng.normal(0, 12, (size, size, 3))
            picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
            picture.save(folder / name / f"{name}_{i:03d}.png")
        counts[name] = len(images)
    return counts


def main() -> None:
    """Write the picture folder, build the spec on it with the CLI, report the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the spec's epochs (30)")
    parser.add_argument("--out", type=Path, help="where the pictures, spec and run go "
                        "(default: a temporary folder)")
    parser.add_argument("--per-class", type=int, default=80,
                        help="pictures per class (default 80; each class has ~175 digits)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="image_folder-"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "images", ignore_errors=True)
    counts = write_pictures(out / "images", args.per_class)
    print(f"wrote {sum(counts.values())} pictures to {out / 'images'}: "
          + ", ".join(f"{name} {count}" for name, count in counts.items()))
    spec = shutil.copy(SPEC, out / SPEC.name)  # `image_folder: images` is read beside it
    command = [sys.executable, "-m", "dlspec", "build", str(spec), "--out", str(out / "run")]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    print("$ dlspec build " + " ".join(command[4:]), flush=True)
    build = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(build.stdout.strip())
    if build.returncode != 0:
        sys.exit(f"dlspec build failed (exit {build.returncode}):\n{build.stderr}")
    test = json.loads((out / "run" / "metrics.json").read_text())["test"]
    print(f"test accuracy {test['accuracy']:.3f} (chance {1 / len(CLASSES):.3f}); "
          f"report: {out / 'run' / 'report.md'}")


if __name__ == "__main__":
    main()
