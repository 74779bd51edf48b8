"""The session of a supervised task: one network trained on (inputs, targets) batches.

Batches are indexed straight out of in-memory tensors with a seeded permutation (no sample
passes through Python on its own); each is one optimisation step, alone or as one of several
data-parallel processes. What differs between supervised tasks — how targets meet outputs,
how augmentation moves them, the default loss and metrics, extra checks — the task object
(dlspec.tasks.supervised.SupervisedTask) says; everything else is here or in the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlspec.compile import compile_graph
from dlspec.data import DataSplits, TensorSet, check_outputs, load_data
from dlspec.data.augment import check_augment
from dlspec.errors import Problem, SpecError
from dlspec.export.metadata import DeploymentInfo
from dlspec.graph import ShapedGraph
from dlspec.spec.model import Spec
from dlspec.spec.sections import TrainConfig
from dlspec.train import distributed
from dlspec.train.checkpoint import save_weights
from dlspec.train.engine import (
    Callbacks,
    FitResult,
    Run,
    Session,
    finite,
    learning_rate,
    seed_weights,
    write_run_report,
)
from dlspec.train.gradnorms import GradientNorms
from dlspec.train.losses import check_loss_against_output, make_loss, regularization_penalty
from dlspec.train.metrics import compute_metrics
from dlspec.train.optim import make_optimizer
from dlspec.train.outputs import write_curves
from dlspec.train.schedules import make_schedule
from dlspec.train.transfer import TransferReport, apply_transfer

if TYPE_CHECKING:
    from dlspec.tasks.supervised import SupervisedTask


def batches(data: TensorSet, batch_size: int,
            order: torch.Generator | None) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """Mini-batches indexed straight out of the tensors: no per-sample Python work."""
    count = len(data)
    index = torch.randperm(count, generator=order) if order is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        chosen = index[start:start + batch_size]
        yield [tensor[chosen] for tensor in data.inputs.values()], data.target[chosen]


def start_supervised(task: SupervisedTask, run: Run) -> SupervisedSession:
    """Check the spec against its data, load the data, build the network: the session."""
    spec = run.spec
    if len(run.shaped) > 1:
        raise SpecError(Problem(("networks",), "several networks train together only as a "
                                "GAN or a CycleGAN", "task: gan trains a generator against a "
                                "discriminator; task: cyclegan two of each"))
    (shaped,) = run.shaped.values()
    data, binary = prepare(task, spec, shaped, run.base_dir)
    return SupervisedSession(task, run, shaped, data, binary)


def prepare(task: SupervisedTask, spec: Spec, shaped: ShapedGraph,
            base: Path) -> tuple[DataSplits, bool]:
    """Every check that can fail before training starts; the data, and whether the loss is
    binary cross-entropy."""
    if len(shaped.graph.outputs) != 1:
        raise SpecError(Problem(("outputs",), "training a network with several outputs is "
                                "not supported yet", "train a network with one output"))
    (output,) = shaped.outputs().values()
    if spec.data is None:
        raise SpecError(Problem((), "training needs a `data:` section",
                                "e.g. data: {dataset: digits}"))
    data = task.prepare_data(load_data(spec.data, spec.task, dict(shaped.graph.inputs),
                                       seed=spec.train.seed, base_dir=base))
    check_outputs(data, output.shape, spec.task)
    if spec.augment is not None:
        check_augment(spec.augment, {k: v.shape for k, v in shaped.graph.inputs.items()})
    check_loss_against_output(spec.loss, spec.task, output.shape)
    _check_no_sigmoid_before_logit_loss(spec, shaped)
    task.check_metrics(spec)
    binary = spec.loss is not None and spec.loss.type == "binary_cross_entropy"
    return data, binary


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


class SupervisedSession(Session):
    """One network, its optimiser and schedule, the loss, metrics and data of a run."""

    keeps_best = True

    def __init__(self, task: SupervisedTask, run: Run, shaped: ShapedGraph, data: DataSplits,
                 binary: bool):
        spec, train = run.spec, run.train
        self.task, self.spec, self.train, self.device = task, spec, train, run.device
        self.shaped, self.dataset, self.binary = shaped, data, binary
        self.processes = run.processes
        self.writes = run.processes is None or run.processes.main
        self.has_val = data.val is not None
        self.samples = len(data.train)
        self.model, self.transferred = self._model(run)
        self.saved = self.model
        self.average = (torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(train.ema),
            use_buffers=True) if train.ema is not None else None)
        if train.compile:  # torch.compile in place: state_dict keys stay the spec's names
            self.model.compile()
        optimizer = make_optimizer(spec.optimizer, self.model)
        steps = math.ceil(len(data.train) / train.batch_size)
        self.optimizers = {"model": optimizer}
        self.schedules = {"model": make_schedule(spec.schedule, optimizer, epochs=run.epochs,
                                                 steps_per_epoch=steps)}
        self.loss = make_loss(spec.loss, spec.task).to(run.device)
        self.metrics = list(train.metrics or task.default_metrics)
        # DDP all-reduces gradients in backward: the forward pass runs through its wrapper
        self.runner = (distributed.wrap(self.model, run.device) if run.processes is not None
                       else self.model)
        self.sum_reduced = getattr(self.loss, "reduction", "mean") == "sum"

    def _model(self, run: Run) -> tuple[nn.Module, TransferReport | None]:
        """The initialised network (transferred weights, frozen layers), on the device."""
        seed_weights(run.train)
        model = compile_graph(self.shaped)
        transfer = (apply_transfer(model, run.spec.transfer, run.base_dir)
                    if run.spec.transfer is not None else None)  # before the optimizer
        return model.to(run.device), transfer

    # ----------------------------------------------------------------------- training

    def train_epoch(self, epoch: int, epochs: int, order: torch.Generator,
                    callbacks: Callbacks) -> dict[str, float]:
        """One pass over the training split, a step a batch; the mean loss."""
        model, train, optimizer = self.model, self.train, self.optimizers["model"]
        schedule, data = self.schedules["model"], self.dataset.train
        callbacks.on_epoch_start(epoch, epochs, math.ceil(len(data) / train.batch_size))
        model.train()
        hold_frozen_statistics(model)
        total, count = 0.0, 0
        norms = GradientNorms(model) if train.log_grad_norms else None
        for batch, (inputs, target) in enumerate(batches(data, train.batch_size, order), 1):
            if self.spec.augment is not None:  # drawn from the batch order: resumable
                stats = [self.dataset.normalization.get(name) for name in data.inputs]
                inputs, target = self.task.augment(inputs, target, self.spec.augment, order,
                                                   stats)
            size = len(target)
            part = self._part(inputs, target)
            if part is None:
                continue
            loss = self._loss(*part, batch_size=size)
            value = finite(self._batch_loss(loss), epoch, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if norms is not None:
                norms.measure()
            _clip(model, train)
            optimizer.step()
            if self.average is not None:
                self.average.update_parameters(model)
            schedule.step_batch()
            total += value * size
            count += size
            callbacks.on_batch(batch, value, size)
        return {"epoch": float(epoch), "train_loss": total / max(count, 1),
                "lr": learning_rate(optimizer), **(norms.means() if norms is not None else {})}

    def _part(self, inputs: list[torch.Tensor], target: torch.Tensor,
              ) -> tuple[list[torch.Tensor], torch.Tensor] | None:
        """This process's part of a batch, on its device; None when it gets no sample."""
        if self.processes is not None:
            if len(target) < self.processes.world:  # a last batch too small to share: skipped
                return None
            inputs = [self.processes.shard(x) for x in inputs]
            target = self.processes.shard(target)
        return [x.to(self.device) for x in inputs], target.to(self.device)

    def _loss(self, inputs: list[torch.Tensor], target: torch.Tensor,
              batch_size: int) -> torch.Tensor:
        """The batch's loss (with the regularisation penalty) as this process contributes it."""
        with _autocast(self.train, self.device):
            outputs = self.runner(*inputs)
            loss = self.loss(*self.task.align(outputs, target, self.binary))
            if self.processes is not None:
                # DDP averages gradients over processes; weighting each part by its share of
                # the batch makes that average the gradient of the whole batch's loss
                world = self.processes.world
                loss = loss * (world if self.sum_reduced else world * len(target) / batch_size)
            penalty = self._penalty()
            if penalty is not None:
                loss = loss + penalty
        return loss

    def _penalty(self) -> torch.Tensor | None:
        reg = getattr(self.spec.loss, "regularization", None) if self.spec.loss else None
        return regularization_penalty(self.model, reg) if reg is not None else None

    def _batch_loss(self, loss: torch.Tensor) -> float:
        """The whole batch's loss, the same in every process."""
        if self.processes is None:
            return loss.item()
        return distributed.sum_across(loss).item() / self.processes.world

    # ----------------------------------------------------------------------- measuring

    def measure(self, epoch: int) -> dict[str, float]:
        """Loss and metrics on the validation split (on the training split without one)."""
        evaluated = self.evaluated()
        if self.processes is not None:  # every process then evaluates the same model
            distributed.share_buffers(evaluated)
        data = self.dataset
        prefix, split = ("val", data.val) if data.val is not None else ("train", data.train)
        values = self.evaluate(evaluated, split)
        return {f"{prefix}_{k}": v for k, v in values.items()
                if not (prefix == "train" and k == "loss")}

    def evaluate(self, model: nn.Module, data: TensorSet) -> dict[str, float]:
        """Loss and metrics over a whole split, under inference mode."""
        model.eval()
        outputs, total, count = [], 0.0, 0
        with torch.inference_mode():
            for inputs, target in batches(data, self.train.batch_size, None):
                out = model(*(x.to(self.device) for x in inputs))
                total += self.loss(*self.task.align(out, target.to(self.device),
                                                    self.binary)).item() * len(target)
                count += len(target)
                outputs.append(out.cpu())
        result = {"loss": total / max(count, 1)}
        result.update(compute_metrics(self.metrics, *self.task.scored(torch.cat(outputs),
                                                                      data.target)))
        return result

    def test(self) -> dict[str, float] | None:
        """Loss and metrics on the test split, with the kept weights."""
        if self.dataset.test is None:
            return None
        return self.evaluate(self.model, self.dataset.test)

    # ----------------------------------------------------------------------- the run folder

    def info(self) -> DeploymentInfo:
        """Labels, normalisation and image inputs: what inference repeats."""
        return deployment_info(self.dataset)

    def data(self) -> DataSplits:
        """The run's data splits."""
        return self.dataset

    def transfer(self) -> TransferReport | None:
        """What `transfer:` loaded."""
        return self.transferred

    def write(self, run_dir: Path, result: FitResult, test: dict[str, float] | None) -> None:
        """The best weights, the curves and report.md."""
        kept = bool(result.history)  # a run stopped in its first epoch has nothing to keep
        if kept:
            save_weights(self.model, run_dir / "model.safetensors")
            write_curves(run_dir, result.history, self.spec.name)
        write_run_report(run_dir, self.report_lines(result, test), [
            *([("[model.safetensors](model.safetensors)", "the best weights")] if kept
              else []),
            ("[data.json](data.json)", "class labels and normalisation, for inference"),
            ("[metrics.csv](metrics.csv), [metrics.json](metrics.json)", "per-epoch numbers"),
            *([("[curves.png](curves.png)", "loss, metric and learning-rate curves")]
              if kept else [])])

    def report_lines(self, result: FitResult, test: dict[str, float] | None) -> list[str]:
        """report.md's account of the data, the training and the test numbers."""
        data, last = self.dataset, (result.history[-1] if result.history else {})
        lines = [f"# {self.spec.name}", "",
                 f"Data: {data.source}; {len(data.train)} training samples"
                 + (f", {len(data.val)} validation" if data.val is not None else "")
                 + (f", {len(data.test)} test." if data.test is not None else "."), "",
                 f"Training: {len(result.history)} epochs ({result.stop_reason}); best epoch "
                 f"{result.best_epoch}; final learning rate {last.get('lr', 0):.3g}.", ""]
        if self.transferred is not None:
            lines += [*self.transferred.lines(), ""]
        if test is not None:
            lines += ["Test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()), ""]
        if result.failure is not None:
            lines += [f"The run failed: {result.failure}. "
                      + ("model.safetensors holds the best epoch's weights; no test numbers."
                         if result.history else "No epoch finished: no weights were kept."),
                      ""]
        return lines


def deployment_info(data: DataSplits) -> DeploymentInfo:
    """What inference must repeat of the data preparation: labels, normalisation, images."""
    return DeploymentInfo(data.labels, data.normalization, data.image_inputs)


def hold_frozen_statistics(model: nn.Module) -> None:
    """Put normalisation layers whose weights are all frozen back in eval mode, so that
    their running statistics stay as loaded too (what Keras does for `trainable=False`)."""
    for module in model.modules():
        if not isinstance(module, torch.nn.modules.batchnorm._NormBase):
            continue
        weights = list(module.parameters(recurse=False))
        if weights and not any(w.requires_grad for w in weights):
            module.eval()


def _autocast(train: TrainConfig, device: torch.device) -> AbstractContextManager[Any]:
    if not train.mixed_precision:
        return nullcontext()
    dtype = torch.float16 if train.precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _clip(model: nn.Module, train: TrainConfig) -> None:
    if train.grad_clip is None:
        return
    if train.grad_clip.norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip.norm)
    elif train.grad_clip.value is not None:
        torch.nn.utils.clip_grad_value_(model.parameters(), train.grad_clip.value)
