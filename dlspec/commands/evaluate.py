"""`dlspec evaluate`: a run or an exported model scored on labelled data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlspec.commands.args import positive_int

DESCRIPTION = ("Score a trained model on labelled data: a run folder (the network rebuilt "
               "with torch from its spec.resolved.yaml and model.safetensors; by default on "
               "its spec's test split) or an exported .onnx model (ONNX Runtime, torch is not "
               "imported; DATA required). DATA is a CSV (the inputs' columns and a label "
               "column: --label-column, else the one the run trained on, else label, target "
               "or y), an NPZ (the inputs' arrays and a label array, e.g. y) or a folder of "
               "images with one sub-folder per class. Prints accuracy and macro precision, "
               "recall and F1 (classifiers: per class too) or MAE, RMSE and R² (regressors); "
               "writes metrics.json, per_class.csv and confusion.png (classifiers) or "
               "residuals.png (regressors) into the -o folder.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `evaluate` with the `dlspec` command's sub-parsers."""
    parser = commands.add_parser("evaluate", help="score a run or an ONNX model on labelled "
                                 "data", description=DESCRIPTION)
    parser.add_argument("target", type=Path, metavar="RUN_OR_MODEL",
                        help="a run folder, or an .onnx file")
    parser.add_argument("data", type=Path, nargs="?", metavar="DATA",
                        help="labelled .csv or .npz, or a folder of images in class "
                        "sub-folders (default for a run: its test split)")
    parser.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="folder for the results (default: RUN/evaluation, or "
                        "./evaluation for a model)")
    parser.add_argument("--label-column", metavar="NAME",
                        help="DATA's label column (an NPZ: its array of labels)")
    parser.add_argument("--spec-dir", type=Path, metavar="DIR",
                        help="a run's spec folder, where its data paths start (default: "
                        "the first of the run folder, the trained spec's folder and the "
                        "current folder that holds the data)")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto",
                        help="onnxruntime execution provider, for a model (default auto)")
    parser.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                        help="samples per model call (default 256)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the metrics, write the results."""
    from dlspec.experiments.evaluate import Options, default_output, evaluate
    from dlspec.runtime.writers import check_output

    folder = args.output or default_output(args.target)
    check_output(folder, folder=True)  # before any work
    evaluation = evaluate(args.target, args.data, Options(
        label_column=args.label_column, batch_size=args.batch_size, provider=args.provider,
        spec_dir=args.spec_dir))
    sys.stdout.write(evaluation.report())
    written = evaluation.write(folder)
    for note in evaluation.notes:
        print(note, file=sys.stderr)
    print(f"wrote {folder}/: {', '.join(path.name for path in written)}", file=sys.stderr)
    return 0
