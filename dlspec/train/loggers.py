"""Loggers that hear a run beside metrics.csv: TensorBoard and MLflow, as `train.log` asks.

Each is an optional extra (`pip install 'dlspec[tensorboard]'`, `'dlspec[mlflow]'`); a spec
that asks for one whose package is missing is refused before any work (`require_loggers`:
SpecError at `train.log`, exit 2). The engine wraps its caller's `Callbacks` in `Loggers`,
which hands every event on and opens the loggers when the first epoch ends; they are closed
with the run's outcome (finished, failed, killed) however it ends.

* TensorBoard writes event files into `<run>/tensorboard/`, as Keras does: the column
  `train_X` of metrics.csv is tag `X` of TensorBoard run `train`, `val_X` tag `X` of run
  `val` (so training and validation share a chart), any other column (`lr`, `seconds`,
  `grad_norm/…`, a GAN's `d_loss`) a tag of run `train`; the test numbers are tags of run
  `test` at the last epoch; the spec is text `spec`. A resumed run drops the events of the
  epochs it trains again, or those of an old run in a folder trained anew (`purge_step`).
* MLflow logs a run of experiment `experiment` (default: the spec's name) named after the
  run folder: the spec's training sections flattened as parameters (`optimizer.lr`,
  `train.batch_size`, …), every metrics.csv column each epoch (step = epoch) and the test
  numbers as `test_<metric>`, and at the end the run folder's files as artifacts. The store
  is `tracking_uri`, else MLFLOW_TRACKING_URI, else MLflow's own default in the current
  folder — where `mlflow ui` started in that folder looks (MLflow ≥ 3.7: the SQLite database
  `mlflow.db`, artifacts in `mlruns/`; before, the `mlruns/` file store). `<run>/mlflow.json`
  records the store and the run's id, so `--resume` goes on logging into the same MLflow run
  and `log_run_files` can add files written after training (`dlspec build`'s model.onnx).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dlspec.errors import DlspecError, Interrupted, Problem, SpecError, WorkError
from dlspec.runfiles import ARTIFACTS

if TYPE_CHECKING:
    from dlspec.spec.model import Spec
    from dlspec.spec.sections import MlflowLog
    from dlspec.train.engine import Callbacks

TENSORBOARD = "tensorboard"  # the event files' folder in the run folder
MLFLOW_RECORD = "mlflow.json"  # the MLflow store and run id of a run folder
# the run folder's files an MLflow run keeps, when they are there

# the sections whose settings are an MLflow run's parameters (the network is not)
_PARAMETERS = ("task", "loss", "optimizer", "schedule", "data", "augment", "train", "transfer",
               "params")
_VALUE_LENGTH = 500  # MLflow 2's limit on a parameter's value
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"),
             "mlflow": ("mlflow", "mlflow")}  # logger → (module, extra)


def require_loggers(spec: Spec) -> None:
    """SpecError at `train.log` for a logger whose package is not installed, with the pip
    command that installs it."""
    log = spec.train.log
    if log is None:
        return
    import importlib

    problems = []
    for name in log.names:
        module, extra = _PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError:
            problems.append(Problem(("train", "log"), f"{name} needs the {module} package, "
                                    "which is not installed", f"pip install 'dlspec[{extra}]'"))
    if problems:
        raise SpecError(problems)


class Logger(Protocol):
    """One logger: opened when the first epoch it hears ends, told every epoch, closed at
    the end."""

    name: str

    def open(self, first_epoch: int) -> None: ...

    def epoch(self, record: dict[str, float]) -> None: ...

    def close(self, test: dict[str, float] | None, status: str) -> None: ...


class Loggers:
    """The spec's loggers heard as `Callbacks`, beside (after) the caller's own."""

    def __init__(self, spec: Spec, run_dir: Path, epochs: int, heard: Callbacks):
        self.heard = heard
        self.loggers: list[Logger] = []
        self.opened = False
        log = spec.train.log
        if log is not None and log.tensorboard is not None:
            self.loggers.append(TensorBoard(spec, run_dir))
        if log is not None and log.mlflow is not None:
            self.loggers.append(Mlflow(log.mlflow, spec, run_dir, epochs))

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.heard.on_epoch_start(epoch, epochs, batches)

    def on_batch(self, batch: int, loss: float, samples: int) -> None:
        self.heard.on_batch(batch, loss, samples)

    def on_epoch_end(self, record: dict[str, float]) -> None:
        self.heard.on_epoch_end(record)
        if not self.opened:  # here, not at the epoch's start: outside the epoch's timing
            self.opened = True
            for logger in self.loggers:
                _guarded(logger.name, "start", partial(logger.open, int(record["epoch"])))
        for logger in self.loggers:
            _guarded(logger.name, "log an epoch", partial(logger.epoch, record))

    def close(self, test: dict[str, float] | None, failure: BaseException | None) -> None:
        """Close every opened logger with the run's outcome. After a failure a logger that
        cannot close is left as it is: the failure is what the user needs to hear."""
        if not self.opened:
            return
        status = ("FINISHED" if failure is None else
                  "KILLED" if isinstance(failure, Interrupted | KeyboardInterrupt) else "FAILED")
        for logger in self.loggers:
            try:
                _guarded(logger.name, "finish", partial(logger.close, test, status))
            except WorkError:
                if failure is None:
                    raise


def _guarded(name: str, doing: str, action: Callable[[], None]) -> None:
    """Run a logger's `action`; its failure (a server away, a full disk) is a WorkError that
    names the logger (exit 1: the checkpoint stands, `--resume` goes on)."""
    try:
        action()
    except DlspecError:
        raise
    except Exception as error:  # whatever the logging package raises
        raise WorkError(Problem((), f"{name} could not {doing}: {type(error).__name__}: "
                                f"{str(error)[:300]}")) from error


# --------------------------------------------------------------------------- TensorBoard


def tensorboard_tag(column: str) -> tuple[str, str]:
    """The TensorBoard run and tag of a metrics.csv column: `val_loss` → (val, loss)."""
    for run in ("train", "val"):
        if column.startswith(f"{run}_"):
            return run, column.removeprefix(f"{run}_")
    return "train", column


class TensorBoard:
    """Event files in `<run>/tensorboard/{train,val,test}/` (torch.utils.tensorboard)."""

    name = "tensorboard"

    def __init__(self, spec: Spec, run_dir: Path):
        self.spec, self.folder = spec, run_dir / TENSORBOARD
        self.writers: dict[str, Any] = {}
        self.purge: int | None = None
        self.step = 0

    def _writer(self, run: str) -> Any:
        if run not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            self.writers[run] = SummaryWriter(str(self.folder / run), purge_step=self.purge)
        return self.writers[run]

    def open(self, first_epoch: int) -> None:
        """Start writing. Earlier events from `first_epoch` on are dropped (TensorBoard's
        purge_step): those of the epochs a resumed run trains again, or of the old run in a
        folder trained anew (`--overwrite`)."""
        self.purge = first_epoch
        if first_epoch == 1:
            self._drop_old_events()  # TensorBoard's purge alone misses a run of the same second
            text = "\n".join(f"    {line}" for line in _spec_text(self.spec).splitlines())
            self._writer("train").add_text("spec", text, 0)  # indented: shown as code

    def _drop_old_events(self) -> None:
        """Remove the event files of an old run in this folder (regular files only; links
        are left alone, never followed)."""
        for run in ("train", "val", "test"):
            folder = self.folder / run
            if folder.is_symlink() or not folder.is_dir():
                continue
            for path in folder.glob("events.out.tfevents.*"):
                if path.is_file() and not path.is_symlink():
                    path.unlink()

    def epoch(self, record: dict[str, float]) -> None:
        self.step = int(record["epoch"])
        for column, value in record.items():
            if column != "epoch":
                run, tag = tensorboard_tag(column)
                self._writer(run).add_scalar(tag, value, self.step)
        for writer in self.writers.values():
            writer.flush()

    def close(self, test: dict[str, float] | None, status: str) -> None:
        for metric, value in (test or {}).items():
            self._writer("test").add_scalar(metric, value, self.step)
        for writer in self.writers.values():
            writer.close()


def _spec_text(spec: Spec) -> str:
    import yaml

    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- MLflow


def spec_parameters(spec: Spec, epochs: int) -> dict[str, str]:
    """The spec's training settings as MLflow parameters: flattened paths (`optimizer.lr`,
    `train.batch_size`, `schedule.phases[0].type`) with every default, lists of numbers as
    JSON (`optimizer.betas: [0.9, 0.999]`), unset (null) values left out."""
    data = spec.model_dump(mode="json", by_alias=True, include=set(_PARAMETERS))
    train = data.setdefault("train", {})
    train.pop("log", None)
    train["epochs"] = epochs
    flat: dict[str, str] = {}
    _flatten(data, "", flat)
    return flat


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif value is not None:
        text = value if isinstance(value, str) else json.dumps(value)
        out[prefix] = text[:_VALUE_LENGTH]


def _absolute(uri: str) -> str:
    """A SQLite store's URI with its path made absolute (MLflow's default is relative to the
    current folder), so mlflow.json names the same store from anywhere."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


class Mlflow:
    """A run in an MLflow tracking store (mlflow.tracking.MlflowClient)."""

    name = "mlflow"

    def __init__(self, config: MlflowLog, spec: Spec, run_dir: Path, epochs: int):
        self.config, self.spec, self.run_dir, self.epochs = config, spec, run_dir, epochs
        self.client: Any = None
        self.run_id = ""
        self.step = 0

    def open(self, first_epoch: int) -> None:
        """Go on with the run mlflow.json names when resuming into the same store; else a
        new run with the spec's parameters."""
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.config.tracking_uri)
        uri = _absolute(self.client.tracking_uri)
        known = _recorded(self.run_dir) if first_epoch > 1 else None
        if known is not None and known.get("tracking_uri") == uri:
            try:
                self.client.update_run(known["run_id"], status="RUNNING")
                self.run_id = known["run_id"]
                return
            except Exception:  # gone from the store: a new run
                pass
        experiment = self.config.experiment or self.spec.name
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(experiment))
        run = self.client.create_run(experiment_id, run_name=self.run_dir.resolve().name,
                                     tags={"dlspec.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        self._write_record(uri, experiment_id)
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in spec_parameters(self.spec, self.epochs).items()]
        for start in range(0, len(params), 100):  # MLflow takes 100 parameters a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _write_record(self, uri: str, experiment_id: str) -> None:
        record = {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id}
        (self.run_dir / MLFLOW_RECORD).write_text(json.dumps(record, indent=2) + "\n")

    def epoch(self, record: dict[str, float]) -> None:
        self.step = int(record["epoch"])
        self._metrics({k: v for k, v in record.items() if k != "epoch"}, self.step)

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow takes 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def close(self, test: dict[str, float] | None, status: str) -> None:
        if test:
            self._metrics({f"test_{k}": v for k, v in test.items()}, self.step)
        _log_files(self.client, self.run_id, self.run_dir)
        self.client.set_terminated(self.run_id, status=status)


def _recorded(run_dir: Path) -> dict[str, str] | None:
    """What mlflow.json says (None: nothing readable)."""
    try:
        record = json.loads((run_dir / MLFLOW_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("tracking_uri", "run_id")):
        return None
    return record


def _log_files(client: Any, run_id: str, run_dir: Path) -> None:
    for name in ARTIFACTS:
        path = run_dir / name
        if path.is_file() and not path.is_symlink():
            client.log_artifact(run_id, str(path))


def log_run_files(spec: Spec, run_dir: Path) -> bool:
    """Add the run folder's files to the MLflow run its mlflow.json names, for files written
    after training (`dlspec build`'s model.onnx and architecture.svg, environment.json);
    False when the spec logs to no MLflow run."""
    log = spec.train.log
    record = _recorded(run_dir) if log is not None and log.mlflow is not None else None
    if record is None:
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=record["tracking_uri"])
    _guarded("mlflow", "log the run folder's files",
             lambda: _log_files(client, record["run_id"], run_dir))
    return True


__all__ = ["ARTIFACTS", "Loggers", "log_run_files", "require_loggers", "spec_parameters",
           "tensorboard_tag"]
