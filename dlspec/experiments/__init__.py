"""Experiments: the runs a user has trained, listed, compared and scored.

    records.py   a run folder read back (metrics.json, spec.resolved.yaml, the checkpoint
                 marker, report.md, the lock): `RunRecord`; torch-free
    runs.py      `dlspec runs`: every run under a folder, one row each
    compare.py   `dlspec compare`: runs side by side, their spec differences, curves overlaid
    scoring.py   metrics of predictions against labels (numpy), and what evaluate writes
    labelled.py  labelled data files read for a model (the runtime's readers, torch-free)
    evaluate.py  `dlspec evaluate`: an exported ONNX model (no torch), or a run through
    from_run.py  the run's network rebuilt with torch, on its test split or on labelled data
    plots.py     the pictures (matplotlib, Agg)

Run folders, metrics files and data are untrusted: everything read from them is checked
before use, and a file that is not what dlspec writes is a FileError (exit 2) naming it.
Importing this package imports nothing heavy.
"""
