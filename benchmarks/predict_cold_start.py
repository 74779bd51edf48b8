"""Cold start of `dlspec predict`: 1,000 digit images through an exported model, end to end.

Writes the first 1,000 of scikit-learn's digits (8×8 grayscale, scaled 0..16 → 0..255) as PNG
files into a temporary folder (or, with `--input npy`, as one .npy already at the model's input
size) and times, as fresh subprocesses (Python start-up, imports, session creation, image
decoding, the model and the CSV all included), the median of N runs of

    python -m dlspec predict MODEL DATA -o OUT.csv      target < 1.5 s, no torch imported
    python -c pass                                      baseline: Python start-up

interleaved round by round after one untimed warm-up. It then runs the command once under
`-X importtime` to report any `torch` module and the slowest imports, and once in-process,
phase by phase.

The model: `--model PATH`, e.g. runs/lenet5/model.onnx from `dlspec export specs/lenet5.yaml`
(the exporter writes the dlspec_* metadata the runtime reads: image size, normalisation,
labels). Without --model a stand-in is built with onnx.helper: LeNet-5's layers with random
weights and the metadata the exporter writes, so the timing is representative.

Usage: python benchmarks/predict_cold_start.py [--model PATH] [--runs 5] [--input png|npy]
Reports only; the exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COUNT = 1000
TARGET_S = 1.5


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to completion; its wall time and result."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result


def standin_lenet5(path: Path) -> Path:
    """LeNet-5 on 1×32×32 (random weights) with the exporter's metadata, via onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"c1.w": (6, 1, 5, 5), "c1.b": (6,), "c3.w": (16, 6, 5, 5), "c3.b": (16,),
              "c5.w": (400, 120), "c5.b": (120,), "f6.w": (120, 84), "f6.b": (84,),
              "out.w": (84, 10), "out.b": (10,)}
    weights = [numpy_helper.from_array((0.1 * rng.standard_normal(s)).astype(np.float32), n)
               for n, s in shapes.items()]
    node = helper.make_node
    nodes = [node("Conv", ["image", "c1.w", "c1.b"], ["c1"]), node("Tanh", ["c1"], ["t1"]),
             node("AveragePool", ["t1"], ["s2"], kernel_shape=[2, 2], strides=[2, 2]),
             node("Conv", ["s2", "c3.w", "c3.b"], ["c3"]), node("Tanh", ["c3"], ["t2"]),
             node("AveragePool", ["t2"], ["s4"], kernel_shape=[2, 2], strides=[2, 2]),
             node("Flatten", ["s4"], ["flat"], axis=1),
             node("Gemm", ["flat", "c5.w", "c5.b"], ["c5"]), node("Tanh", ["c5"], ["t3"]),
             node("Gemm", ["t3", "f6.w", "f6.b"], ["f6"]), node("Tanh", ["f6"], ["t4"]),
             node("Gemm", ["t4", "out.w", "out.b"], ["output"])]
    graph = helper.make_graph(
        nodes, "lenet5",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {
        "dlspec_version": "0.1.0", "dlspec_spec": "lenet5", "dlspec_spec_sha256": "0" * 64,
        "dlspec_network": "lenet5",
        "dlspec_inputs": json.dumps([{"name": "image", "shape": [None, 1, 32, 32],
                                      "dtype": "float32"}]),
        "dlspec_outputs": json.dumps([{"name": "output", "shape": [None, 10]}]),
        "dlspec_task": json.dumps({"type": "classification", "labels": None, "binary": False}),
        "dlspec_normalization": json.dumps({"image": {"mean": [0.21], "std": [0.32]}}),
        "dlspec_images": json.dumps({"image": {"channels": 1, "size": [32, 32]}}),
    })
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def digits_pixels() -> np.ndarray:
    """The first 1,000 digits as (N, 8, 8) uint8 in 0..255."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:COUNT]
    return np.round(images / 16.0 * 255.0).astype(np.uint8)


def write_data(folder: Path, kind: str, model: Path) -> Path:
    """The digits as a folder of PNGs, or as an .npy at the model's C×H×W input size."""
    from PIL import Image

    pixels = digits_pixels()
    if kind == "png":
        target = folder / "digits"
        target.mkdir()
        for i, image in enumerate(pixels):
            Image.fromarray(image).save(target / f"{i:04d}.png")
        return target
    from dlspec.runtime import Predictor

    predictor = Predictor(model, "cpu")
    _, height, width = (int(d or 8) for d in predictor.inputs[0].per_sample)
    resized = [np.asarray(Image.fromarray(p).resize((width, height), Image.Resampling.BILINEAR))
               for p in pixels]
    target = folder / "digits.npy"
    np.save(target, (np.stack(resized)[:, None] / np.float32(255.0)).astype(np.float32))
    return target


def predict_argv(model: Path, data: Path, out: Path, *flags: str) -> list[str]:
    """`python -m dlspec predict ...`."""
    return [sys.executable, *flags, "-m", "dlspec", "predict", str(model), str(data), "-o",
            str(out)]


def import_report(argv: list[str]) -> str:
    """Torch modules (there must be none), the module count and the slowest imports."""
    _, result = timed([argv[0], "-X", "importtime", *argv[1:]])
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[12:].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    torchy = [n for _, n in rows if n == "torch" or n.startswith("torch.")]
    top = [(us, n) for us, n in sorted(rows, reverse=True) if not n.startswith(" ")]
    tops = ", ".join(f"{n.strip()} {us / 1e6:.3f} s" for us, n in top[:6])
    return (f"torch modules imported: {len(torchy)} (of {len(rows)} modules)\n"
            f"  slowest imports (cumulative): {tops}")


PHASES = r"""
import sys, time
t = [time.perf_counter()]
import dlspec; t.append(time.perf_counter())
from dlspec.runtime.predictor import Predictor, import_onnxruntime
import_onnxruntime(); t.append(time.perf_counter())
from dlspec.runtime.readers import read_inputs
from dlspec.runtime.writers import prediction_table, to_csv
p = Predictor(sys.argv[1], "cpu"); t.append(time.perf_counter())
s = read_inputs(__import__("pathlib").Path(sys.argv[2]), p.inputs, p.metadata.images)
t.append(time.perf_counter())
out = p.predict(s.arrays); t.append(time.perf_counter())
to_csv(prediction_table(p, out, s.names)); t.append(time.perf_counter())
print(*[b - a for a, b in zip(t, t[1:])])
"""


def phases(model: Path, data: Path) -> str:
    """One in-process run, timed phase by phase."""
    _, result = timed([sys.executable, "-c", PHASES, str(model), str(data)])
    if result.returncode != 0:
        return f"phase timing failed: {result.stderr.strip().splitlines()[-1:]}"
    names = ["import dlspec (its __init__)", "import onnxruntime + numpy", "session",
             "read inputs", "predict", "table + CSV"]
    seconds = [float(s) for s in result.stdout.split()]
    return ", ".join(f"{n} {s:.3f}" for n, s in zip(names, seconds, strict=True))


def main() -> int:
    """Time the cold start; print the medians, the baseline and the import report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="an exported .onnx (default: a stand-in "
                        "LeNet-5 built with onnx.helper)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--input", choices=["png", "npy"], default="png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        model = args.model.resolve() if args.model else standin_lenet5(folder / "lenet5.onnx")
        data = write_data(folder, args.input, model)
        argv = predict_argv(model, data, folder / "out.csv")
        print(f"model: {model if args.model else 'stand-in LeNet-5 (random weights)'}")
        print(f"data: {COUNT} digits as {'PNG files' if args.input == 'png' else 'one .npy'}")
        print(f"command: {' '.join(argv[1:])}")
        _, warm = timed(argv)
        if warm.returncode != 0:
            print(f"the command failed ({warm.returncode}): {warm.stderr.strip()}")
            return 0
        print(f"  its summary: {warm.stderr.strip()}")
        lines = (folder / "out.csv").read_text().splitlines()
        print(f"  wrote {len(lines) - 1} rows; columns: {lines[0]}")
        predict, baseline = [], []
        for _ in range(args.runs):
            predict.append(timed(argv)[0])
            baseline.append(timed([sys.executable, "-c", "pass"])[0])
        median = statistics.median(predict)
        verdict = "pass" if median < TARGET_S else "FAIL"
        print(f"\npredict, median of {args.runs}: {median:.3f} s (min {min(predict):.3f}, "
              f"max {max(predict):.3f}); target < {TARGET_S} s: {verdict}")
        print(f"python -c pass, median of {args.runs}: {statistics.median(baseline):.3f} s")
        print(import_report(argv))
        print(f"in-process phases (s): {phases(model, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
