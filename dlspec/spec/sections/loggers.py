"""The `train.log` section: the loggers that hear a run (TensorBoard, MLflow) and their
settings. `log: tensorboard`, `log: [tensorboard, mlflow]` and a mapping
`{mlflow: {experiment: x}}` (a logger's settings may be left empty) are the same section.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from dlspec.spec.sections.base import Section, Shorthand, fail

LOGGERS = ("tensorboard", "mlflow")
# where a spec may send an MLflow run: a tracking server. A local store is MLflow's default
# in the current folder, or MLFLOW_TRACKING_URI: the user's choice, never a shared spec's.
_SERVERS = ("http://", "https://", "databricks")


def _plain_text(value: str, what: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise ValueError(f"the {what} holds control or invisible characters")
    return value


def _tracking_uri(value: str) -> str:
    _plain_text(value, "tracking URI")
    if not value.startswith(_SERVERS):
        raise ValueError("a spec sends its MLflow run only to a tracking server (http://…, "
                         "https://…, databricks); for a local store leave tracking_uri out "
                         "(MLflow's store in the current folder) or set MLFLOW_TRACKING_URI")
    return value


class TensorBoardLog(Section):
    """TensorBoard event files in the run folder's tensorboard/ (runs train, val, test)."""


class MlflowLog(Section):
    """An MLflow run: the resolved spec as parameters, every epoch's numbers, the run folder's
    files as artifacts."""

    tracking_uri: Annotated[str, AfterValidator(_tracking_uri)] | None = Field(
        None, min_length=1, max_length=2048, description="a tracking server: http(s)://… or "
        "databricks (default: MLFLOW_TRACKING_URI, else MLflow's local store in the current "
        "folder: mlflow.db and mlruns/)")
    experiment: Annotated[str, AfterValidator(lambda v: _plain_text(v, "experiment name"))] \
        | None = Field(None, min_length=1, max_length=256,
                       description="the MLflow experiment (default: the spec's name)")


class LogConfig(Section):
    """The loggers that hear every epoch, beside metrics.csv."""

    tensorboard: TensorBoardLog | None = Field(None, description="TensorBoard event files")
    mlflow: MlflowLog | None = Field(None, description="an MLflow run")

    @property
    def names(self) -> list[str]:
        """The loggers asked for."""
        return [name for name in LOGGERS if getattr(self, name) is not None]


def _log(value: Any) -> Any:
    """`tensorboard`, `[tensorboard, mlflow]` or a mapping whose values may be left empty
    (`{tensorboard: , mlflow: {experiment: x}}`): the full form."""
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else None
    if items is None:
        return ({k: {} if v is None or v is True else v for k, v in value.items() if v is not False}
                if isinstance(value, dict) else value)
    full: dict[str, Any] = {}
    for index, item in enumerate(items):
        where = (index,) if isinstance(value, list) else ()
        if not isinstance(item, str):
            fail(f"expected a logger's name, got {type(item).__name__}", *where, value=item)
        if item not in LOGGERS:
            fail(f"unknown logger '{item}'", *where, value=item, kind="unknown_choice",
                 context={"choices": list(LOGGERS)})
        if item in full:
            fail(f"{item} is listed twice", *where, value=item)
        full[item] = {}
    return full


Log = Annotated[LogConfig, Shorthand(_log, {"anyOf": [
    {"type": "string", "enum": list(LOGGERS), "description": "one logger"},
    {"type": "array", "items": {"type": "string", "enum": list(LOGGERS)},
     "description": "several loggers"}]})]
