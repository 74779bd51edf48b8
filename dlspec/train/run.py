"""`dlspec train`: a spec's network trained on its data, and the run folder that explains it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlspec.compile import compile_graph
from dlspec.data import DataSplits, check_outputs, load_data
from dlspec.data.augment import check_augment
from dlspec.errors import Problem, SpecError
from dlspec.export.metadata import DeploymentInfo
from dlspec.graph import ShapedGraph
from dlspec.spec.model import Spec
from dlspec.spec.sections import TaskConfig
from dlspec.train import distributed
from dlspec.train.checkpoint import (
    has_checkpoint,
    mark_outputs_written,
    save_weights,
    writing,
)
from dlspec.train.loop import Callbacks, FitResult, Objective, evaluate, fit
from dlspec.train.losses import check_loss_against_output, make_loss, regularization_penalty
from dlspec.train.metrics import SEGMENTATION_METRICS, default_metrics
from dlspec.train.optim import make_optimizer
from dlspec.train.outputs import write_curves, write_metrics, write_report, write_resolved_spec
from dlspec.train.resume import trained_with
from dlspec.train.schedules import make_schedule
from dlspec.train.transfer import TransferReport, apply_transfer


@dataclass
class TrainResult:
    """A finished run: its folder, history, test numbers and the trained model."""

    run_dir: Path
    fit: FitResult
    test: dict[str, float] | None
    model: torch.nn.Module
    data: DataSplits
    seconds: float
    transfer: TransferReport | None = None
    # what inference needs besides the weights (None: the data's, see deployment_info)
    info: DeploymentInfo | None = None


def train_network(spec: Spec, shaped: ShapedGraph, run_dir: Path, *, epochs: int | None = None,
                  device: str | None = None, resume: bool = False,
                  callbacks: Callbacks | None = None) -> TrainResult:
    """Train one network of `spec` and write its run folder.

    Example:
        >>> spec = dlspec.load("specs/lenet5.yaml")
        >>> result = train_network(spec, dlspec.shapes(spec)["lenet5"], Path("runs/lenet5"))
        >>> result.test["accuracy"] > 0.95
        True
    """
    began = time.perf_counter()
    task, data, binary = _prepare(spec, shaped)
    train = spec.train
    epochs = epochs or train.epochs
    # with --nproc, this process is one of several data-parallel workers
    with distributed.joined(pick_device(device or train.device)) as (processes, target_device):
        if processes is not None and not processes.main:
            callbacks = None  # process 0 reports for all
        model, transfer, average = _model(spec, shaped, target_device)
        steps = math.ceil(len(data.train) / train.batch_size)
        optimizer = make_optimizer(spec.optimizer, model)
        objective = Objective(
            loss=make_loss(spec.loss, task).to(target_device), optimizer=optimizer,
            schedule=make_schedule(spec.schedule, optimizer, epochs=epochs,
                                   steps_per_epoch=steps),
            regularization=_regularization(spec), task_type=task.type,
            metrics=list(train.metrics or default_metrics(task.type)), augment=spec.augment,
            normalization=data.normalization, average=average)
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = trained_with(spec, epochs, {"model": objective.schedule})  # fresh plan
        result = fit(model, data, objective, train, epochs=epochs, device=target_device,
                     run_dir=run_dir, resume=resume, binary=binary, callbacks=callbacks,
                     processes=processes, settings=settings)
    test = (evaluate(model, data.test, objective, train.batch_size, target_device, binary)
            if data.test is not None and result.failure is None else None)
    if (processes is None or processes.main) and not result.already_done:
        with writing(run_dir):
            _write_run(run_dir, spec, model, result, test, data, epochs, transfer)
            if result.failure is None and has_checkpoint(run_dir):
                mark_outputs_written(run_dir)
    if result.failure is not None:
        raise result.failure
    return TrainResult(run_dir, result, test, model, data, time.perf_counter() - began,
                       transfer)


def _prepare(spec: Spec, shaped: ShapedGraph) -> tuple[TaskConfig, DataSplits, bool]:
    """Every check that can fail before training starts; the task, the data, binary loss."""
    task = _task(spec)
    if len(shaped.graph.outputs) != 1:
        raise SpecError(Problem(("outputs",), "training a network with several outputs is "
                                "not supported yet", "train a network with one output"))
    (output,) = shaped.outputs().values()
    data = _data(spec, task, shaped)
    check_outputs(data, output.shape, task)
    if spec.augment is not None:
        check_augment(spec.augment, {k: v.shape for k, v in shaped.graph.inputs.items()})
    check_loss_against_output(spec.loss, task, output.shape)
    _check_no_sigmoid_before_logit_loss(spec, shaped)
    _check_metrics_suit(spec, task)
    binary = spec.loss is not None and spec.loss.type == "binary_cross_entropy"
    return task, data, binary


def _model(spec: Spec, shaped: ShapedGraph, device: torch.device,
           ) -> tuple[torch.nn.Module, TransferReport | None, Any]:
    """The initialised model (transferred weights, frozen layers), its average, on device."""
    train = spec.train
    torch.manual_seed(train.seed)  # the same initial weights for the same seed
    if torch.are_deterministic_algorithms_enabled() != train.deterministic:
        torch.use_deterministic_algorithms(train.deterministic)  # costs ~1 s of imports
    model = compile_graph(shaped)
    transfer = (apply_transfer(model, spec.transfer, base_dir(spec))
                if spec.transfer is not None else None)  # before the optimizer: frozen = left out
    model = model.to(device)
    average = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(train.ema),
        use_buffers=True) if train.ema is not None else None)
    if train.compile:  # torch.compile in place: state_dict keys stay the spec's names
        model.compile()
    return model, transfer, average


def _check_metrics_suit(spec: Spec, task: TaskConfig) -> None:
    """Segmentation metrics for segmentation, and only they: a per-sample metric of masks (or
    a per-pixel one of classes) would be a number that means nothing."""
    segmenting = task.type == "segmentation"
    wrong = [(i, name) for i, name in enumerate(spec.train.metrics or [])
             if (name in SEGMENTATION_METRICS) != segmenting]
    if wrong:
        raise SpecError([Problem(("train", "metrics", i), f"{name} is not a metric of task "
                                 f"{task.type}", "use " + (", ".join(SEGMENTATION_METRICS)
                                                          if segmenting else
                                                          "accuracy, f1, mae, ...") )
                         for i, name in wrong])


def _check_no_sigmoid_before_logit_loss(spec: Spec, shaped: ShapedGraph) -> None:
    """binary_cross_entropy is BCE-with-logits: a final sigmoid would apply it twice."""
    if spec.loss is None or spec.loss.type != "binary_cross_entropy":
        return
    (last,) = shaped.graph.outputs.values()
    node = next((n for n in shaped.graph.nodes if n.name == last), None)
    if node is not None and node.kind == "sigmoid":
        raise SpecError(Problem(node.path, f"{node.name}: the network ends in a sigmoid, but "
                                "binary_cross_entropy applies the sigmoid itself "
                                "(it is BCE-with-logits)", "remove the final sigmoid"))


def _task(spec: Spec) -> TaskConfig:
    if spec.task is None:
        raise SpecError(Problem((), "training needs a `task:` (e.g. task: classification)"))
    if spec.task.type not in ("classification", "regression", "sequence_classification",
                              "forecasting", "segmentation"):
        raise SpecError(Problem(("task",), f"task {spec.task.type} trains several networks "
                                "together, not one", "declare them under `networks:`"))
    return spec.task


def _data(spec: Spec, task: TaskConfig, shaped: ShapedGraph) -> DataSplits:
    if spec.data is None:
        raise SpecError(Problem((), "training needs a `data:` section",
                                "e.g. data: {dataset: digits}"))
    return load_data(spec.data, task, dict(shaped.graph.inputs), seed=spec.train.seed,
                     base_dir=base_dir(spec))


def base_dir(spec: Spec) -> Path:
    """Where relative paths in the spec start: the spec file's folder."""
    return Path(spec.document.file).parent if spec.document is not None else Path.cwd()


def _regularization(spec: Spec) -> object:
    reg = getattr(spec.loss, "regularization", None) if spec.loss is not None else None
    if reg is None:
        return None
    return lambda model: regularization_penalty(model, reg)


def pick_device(name: str) -> torch.device:
    """The torch device `train.device` (or --device) names; auto: CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(Problem(("train", "device"), "device cuda was asked for, but no CUDA "
                                "device is available", "use device: auto or cpu"))
    return torch.device(name)


def deployment_info(data: DataSplits) -> DeploymentInfo:
    """What inference must repeat of the data preparation: labels, normalisation, images."""
    return DeploymentInfo(data.labels, data.normalization, data.image_inputs)


def _write_run(run_dir: Path, spec: Spec, model: torch.nn.Module, result: FitResult,
               test: dict[str, float] | None, data: DataSplits, epochs: int,
               transfer: TransferReport | None) -> None:
    if result.history:  # a run stopped in its first epoch has no weights worth keeping
        save_weights(model, run_dir / "model.safetensors")
        write_curves(run_dir, result.history, spec.name)
    deployment_info(data).save(run_dir)
    write_metrics(run_dir, result.history, test)
    write_resolved_spec(run_dir, spec, epochs)
    last = result.history[-1] if result.history else {}
    lines = [f"# {spec.name}", "", f"Data: {data.source}; {len(data.train)} training samples"
             + (f", {len(data.val)} validation" if data.val is not None else "")
             + (f", {len(data.test)} test." if data.test is not None else "."), "",
             f"Training: {len(result.history)} epochs ({result.stop_reason}); best epoch "
             f"{result.best_epoch}; final learning rate {last.get('lr', 0):.3g}.", ""]
    if transfer is not None:
        lines += [*transfer.lines(), ""]
    if test is not None:
        lines += ["Test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()), ""]
    if result.failure is not None:
        lines += [f"The run failed: {result.failure}. "
                  + ("model.safetensors holds the best epoch's weights; no test numbers."
                     if result.history else "No epoch finished: no weights were kept."), ""]
    kept = bool(result.history)
    lines += ["| file | what |", "| --- | --- |",
              "| [spec.resolved.yaml](spec.resolved.yaml) | the spec as this run used it |",
              *(["| [model.safetensors](model.safetensors) | the best weights |"] if kept
                else []),
              "| [data.json](data.json) | class labels and normalisation, for inference |",
              "| [metrics.csv](metrics.csv), [metrics.json](metrics.json) | per-epoch numbers |",
              *(["| [curves.png](curves.png) | loss, metric and learning-rate curves |"]
                if kept else []),
              "| checkpoint.* | the latest checkpoint, for `--resume` |"]
    write_report(run_dir, lines)
