"""The names of the files a run folder holds, defined once (torch-free: the runtime, `runs`
and `evaluate` read them without torch).

    runs/lenet5/
      model.safetensors        the kept weights             WEIGHTS
      metrics.csv, metrics.json  per-epoch numbers, test      METRICS_CSV, METRICS_JSON
      curves.png               loss and metric curves        CURVES
      report.md                a short account               REPORT
      spec.resolved.yaml       the spec as trained           RESOLVED_SPEC
      environment.json         versions, device, command     ENVIRONMENT
      data.json                labels and normalisation      DATA_INFO
      model.onnx               the export (`build`)          ONNX
      architecture.svg/.dot    the diagram (`build`)         DIAGRAM
      checkpoint.*             the latest checkpoint         CHECKPOINT_* (dlspec.train.checkpoint)
      .dlspec.lock             held while a run writes       LOCK
"""

from __future__ import annotations

WEIGHTS = "model.safetensors"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
CURVES = "curves.png"
REPORT = "report.md"
RESOLVED_SPEC = "spec.resolved.yaml"
ENVIRONMENT = "environment.json"
DATA_INFO = "data.json"
ONNX = "model.onnx"
DIAGRAM = "architecture.svg"
CHECKPOINT_WEIGHTS = "checkpoint.safetensors"
CHECKPOINT_BEST = "checkpoint.best.safetensors"
CHECKPOINT_STATE = "checkpoint.state.pt"
CHECKPOINT_MARKER = "checkpoint.complete"
LOCK = ".dlspec.lock"

# what a run leaves in its folder (besides its checkpoint marker): one is enough to say a
# run was here. Exports (model.onnx) and diagrams alone are not a run.
RUN_FILES = (METRICS_CSV, METRICS_JSON, RESOLVED_SPEC, ENVIRONMENT, WEIGHTS)
# what a logger (MLflow) copies of a finished run
ARTIFACTS = (METRICS_CSV, METRICS_JSON, CURVES, REPORT, RESOLVED_SPEC, ENVIRONMENT, DATA_INFO,
             ONNX, DIAGRAM)
