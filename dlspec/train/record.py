"""What a run folder records so that its run can be explained and repeated.

* `spec.resolved.yaml`: the spec as the run used it — variant merged, `--set` overrides
  applied, parameters substituted, short forms expanded and every default written out — so
  `dlspec train runs/x/spec.resolved.yaml` trains the same run. (A default that the spec
  format refuses when written for this spec, such as csv's `delimiter` for a built-in
  dataset, stays implicit: the file always loads again as a spec.)
* `environment.json`: where and how it ran — dlspec, Python, torch and numpy versions, the
  platform, the device and torch's thread count, the date (UTC), the command line, the
  variant and the overrides.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from dlspec.errors import DlspecError
from dlspec.runfiles import ENVIRONMENT
from dlspec.runfiles import RESOLVED_SPEC as RESOLVED
from dlspec.spec.model import Spec

_PRUNE_ROUNDS = 32  # a round drops the refused defaults validation reports (at least one)


def write_record(run_dir: Path, spec: Spec, *, epochs: int | None = None,
                 device: str | None = None, resume: bool = False,
                 command: Sequence[str] | None = None) -> None:
    """spec.resolved.yaml (every default written out) and environment.json in `run_dir`."""
    data = resolved_spec(spec, epochs or spec.train.epochs)
    (run_dir / RESOLVED).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    record = environment(spec, device=device, resume=resume, command=command)
    (run_dir / ENVIRONMENT).write_text(json.dumps(record, indent=2) + "\n")


def resolved_spec(spec: Spec, epochs: int) -> dict[str, Any]:
    """The spec as plain data with every default filled in, which loads again as a spec.

    `variants` are left out: the run's variant is already merged in (environment.json
    names it).
    """
    from dlspec.api import validate
    from dlspec.spec.load import Document

    written = _dump(spec, epochs, exclude_unset=True)
    full = _dump(spec, epochs, exclude_unset=False)
    for _ in range(_PRUNE_ROUNDS):
        try:
            validate(Document("spec.resolved.yaml", full))
            return full
        except DlspecError as exc:
            paths = [p.path for p in exc.problems]
        # a default refused for this spec (csv's delimiter beside a built-in dataset) is
        # left to be the default: only values the spec did not set are dropped
        if not all(_drop_default(full, written, tuple(path)) for path in paths):
            break
    return written


def _dump(spec: Spec, epochs: int, *, exclude_unset: bool) -> dict[str, Any]:
    from dlspec.spec.model import NetworkPart

    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=exclude_unset)
    data.pop("variants", None)
    data.setdefault("train", {})["epochs"] = epochs
    first = [k for k in NetworkPart.model_fields if k in data]  # dlspec, name, ... network
    return {k: data[k] for k in [*first, *(k for k in data if k not in first)]}


def _drop_default(full: Any, written: Any, path: tuple[Any, ...]) -> bool:
    """Remove `path` from `full` when `written` (what the spec set) does not hold it; whether
    something was removed."""
    for depth, step in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(full, dict) and step in full:
            if not isinstance(written, dict) or step not in written:
                del full[step]
                return True
            if last:
                return False
            full, written = full[step], written[step]
        elif (isinstance(full, list) and isinstance(step, int) and step < len(full)
              and isinstance(written, list) and step < len(written)):
            full, written = full[step], written[step]
        else:
            return False
    return False


def environment(spec: Spec, *, device: str | None = None, resume: bool = False,
                command: Sequence[str] | None = None) -> dict[str, Any]:
    """Where and how the run ran: versions, platform, device, threads, date, command line,
    variant and overrides."""
    import numpy
    import torch

    import dlspec
    from dlspec.train import distributed
    from dlspec.train.engine import pick_device
    from dlspec.train.runfolder import command_line

    target = pick_device(device or spec.train.device)
    if target.type == "cuda":
        index = target.index if target.index is not None else torch.cuda.current_device()
        target = torch.device("cuda", index)
        name = torch.cuda.get_device_name(target)
    else:
        name = platform.processor() or platform.machine()
    processes = distributed.current()
    document = spec.document
    return {
        "dlspec": dlspec.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": str(target),
        "device_name": name,
        "processes": processes.world if processes is not None else 1,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(command) if command is not None else command_line(),
        "spec_file": document.file if document is not None else None,
        "variant": document.variant if document is not None else None,
        "overrides": list(document.overrides) if document is not None else [],
        "resumed": resume,
    }
