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
from dlspec.data import DataSplits, TensorSet
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
from dlspec.train.heads import Head, make_heads, regularizations
from dlspec.train.losses import regularization_penalty
from dlspec.train.optim import make_optimizer
from dlspec.train.outputs import write_curves
from dlspec.train.schedules import make_schedule
from dlspec.train.transfer import TransferReport, apply_transfer

if TYPE_CHECKING:
    from dlspec.tasks.supervised import SupervisedTask


Targets = dict[str, torch.Tensor]  # output name → a batch's targets


def batches(data: TensorSet, batch_size: int,
            order: torch.Generator | None) -> Iterator[tuple[list[torch.Tensor], Targets]]:
    """Mini-batches indexed straight out of the tensors: no per-sample Python work."""
    count = len(data)
    index = torch.randperm(count, generator=order) if order is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        chosen = index[start:start + batch_size]
        yield ([tensor[chosen] for tensor in data.inputs.values()],
               {name: tensor[chosen] for name, tensor in data.targets.items()})


def start_supervised(task: SupervisedTask, run: Run) -> SupervisedSession:
    """Check the spec against its data, load the data, build the network: the session."""
    spec = run.spec
    if len(run.shaped) > 1:
        raise SpecError(Problem(("networks",), "several networks train together only as a "
                                "GAN or a CycleGAN", "task: gan trains a generator against a "
                                "discriminator; task: cyclegan two of each"))
    (shaped,) = run.shaped.values()
    data, heads = prepare(task, spec, shaped, run.base_dir)
    return SupervisedSession(task, run, shaped, data, heads)


def prepare(task: SupervisedTask, spec: Spec, shaped: ShapedGraph,
            base: Path) -> tuple[DataSplits, list[Head]]:
    """Every check that can fail before training starts; the data and the trained heads."""
    if spec.data is None:
        raise SpecError(Problem((), "training needs a `data:` section",
                                "e.g. data: {dataset: digits}"))
    data = task.load(spec, shaped, base)
    heads = make_heads(task, spec, shaped, data)
    if not heads:
        raise SpecError(Problem(("data",), "the data gives no targets for any output of the "
                                "network", "map them in data.targets: {output: array}"))
    if spec.augment is not None:
        check_augment(spec.augment, {k: v.shape for k, v in shaped.graph.inputs.items()})
        _check_augment_moves_targets(spec, heads)
    _check_no_sigmoid_before_logit_loss(shaped, heads)
    if len(heads) == 1:
        task.check_metrics(spec)
    return data, heads


def _check_augment_moves_targets(spec: Spec, heads: list[Head]) -> None:
    """Only a network's one output has its masks moved with the images."""
    if len(heads) > 1 and any(head.task.classifies_pixels for head in heads):
        raise SpecError(Problem(("augment",), "augmenting a network with several outputs "
                                "moves no targets, but a mask output would have to follow "
                                "flips and crops", "remove augment:, or train the masks alone"))


def _check_no_sigmoid_before_logit_loss(shaped: ShapedGraph, heads: list[Head]) -> None:
    """binary_cross_entropy is BCE-with-logits: a final sigmoid would apply it twice."""
    for head in heads:
        if not head.binary:
            continue
        last = shaped.graph.outputs[head.output]
        node = next((n for n in shaped.graph.nodes if n.name == last), None)
        if node is not None and node.kind == "sigmoid":
            raise SpecError(Problem(node.path, f"{node.name}: the network ends in a sigmoid, "
                                    "but binary_cross_entropy applies the sigmoid itself "
                                    "(it is BCE-with-logits)", "remove the final sigmoid"))


class SupervisedSession(Session):
    """One network, its optimiser and schedule, the loss, metrics and data of a run."""

    keeps_best = True

    def __init__(self, task: SupervisedTask, run: Run, shaped: ShapedGraph, data: DataSplits,
                 heads: list[Head]):
        spec, train = run.spec, run.train
        self.task, self.spec, self.train, self.device = task, spec, train, run.device
        self.shaped, self.dataset = shaped, data
        self.heads = heads
        self.output_names = list(shaped.graph.outputs)
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
        for head in heads:
            head.loss.to(run.device)
        self.regularizations = regularizations(spec)
        # the training metrics of an epoch's steps (tallied by `_observe`), and their names
        self.step_tallies = {head.output: head.tally() for head in heads}
        self.step_losses: dict[str, torch.Tensor] = {}
        self.stepped: set[str] = set()
        self.observed = False
        # DDP all-reduces gradients in backward: the forward pass runs through its wrapper
        self.runner = (distributed.wrap(self.model, run.device) if run.processes is not None
                       else self.model)

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
        """One pass over the training split, a step a batch; the mean loss and the training
        metrics (`train_accuracy`, …) of the outputs the steps produced."""
        model, train, optimizer = self.model, self.train, self.optimizers["model"]
        schedule, data = self.schedules["model"], self.dataset.train
        callbacks.on_epoch_start(epoch, epochs, math.ceil(len(data) / train.batch_size))
        model.train()
        hold_frozen_statistics(model)
        total, count = 0.0, 0
        self.step_tallies = {head.output: head.tally() for head in self.heads}
        self.step_losses = {head.output: torch.zeros((), device=self.device)
                            for head in self.heads if head.prefix}
        self.stepped, self.observed = set(), False
        norms = GradientNorms(model) if train.log_grad_norms else None
        for batch, (inputs, targets) in enumerate(self._batches(data, order), 1):
            if self.spec.augment is not None:  # drawn from the batch order: resumable
                inputs, targets = self._augment(inputs, targets, order)
            size = len(inputs[0])
            part = self._part(inputs, targets)
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
                **self._step_scores(count), "lr": learning_rate(optimizer),
                **(norms.means() if norms is not None else {})}

    def _observe(self, head: Head, outputs: torch.Tensor, target: torch.Tensor,
                 loss: torch.Tensor) -> None:
        """Tally a training step's outputs (and, among several heads, each one's loss) for
        the epoch's training metrics: what the step computed anyway, with dropout and
        augmentation on, as Keras reports them; no extra pass over the data."""
        self.observed = True
        head.add(self.step_tallies[head.output], outputs, target)
        if head.prefix:
            self.step_losses[head.output] += loss.detach().float() * len(outputs)

    def _step_scores(self, count: int) -> dict[str, float]:
        """The epoch's training numbers beside train_loss: among several heads each one's
        `train_<output>_loss`, and the metrics `train_[<output>_]<metric>`; a data-parallel
        run's over every process's steps. Nothing from a session whose `_loss` does not call
        `_observe` (metric learning)."""
        scores: dict[str, float] = {}
        for head in self.heads:
            if head.prefix and self.observed:
                total = self.step_losses[head.output]
                if self.processes is not None:
                    total = distributed.sum_across(total)
                scores[f"{head.prefix}loss"] = total.item() / max(count, 1)
        for head in self.heads:
            tally = self.step_tallies[head.output]
            if self.processes is not None:
                tally.reduce(lambda t: distributed.sum_across(t.to(self.device)).cpu())
            scores.update(head.named(tally.compute()))
        self.stepped = {f"train_{name}" for name in scores}
        return {f"train_{name}": value for name, value in scores.items()}

    def _batches(self, data: TensorSet, order: torch.Generator,
                 ) -> Iterator[tuple[list[torch.Tensor], Targets]]:
        """An epoch's training batches, in the order `order` draws (a task's session may
        add to each: metric learning draws every sample's partners)."""
        return batches(data, self.train.batch_size, order)

    def _augment(self, inputs: list[torch.Tensor], targets: Targets,
                 order: torch.Generator) -> tuple[list[torch.Tensor], Targets]:
        """A training batch randomly changed: a one-output task moves its targets as it must
        (masks follow flips); with several outputs only the inputs change."""
        assert self.spec.augment is not None
        stats = [self.dataset.normalization.get(name) for name in self.dataset.train.inputs]
        if len(targets) != 1:
            from dlspec.data.augment import augment_batch

            return augment_batch(inputs, self.spec.augment, order, stats), targets
        ((name, target),) = targets.items()
        inputs, target = self.task.augment(inputs, target, self.spec.augment, order, stats)
        return inputs, {name: target}

    def _part(self, inputs: list[torch.Tensor], targets: Targets,
              ) -> tuple[list[torch.Tensor], Targets] | None:
        """This process's part of a batch, on its device; None when it gets no sample."""
        if self.processes is not None:
            if len(inputs[0]) < self.processes.world:  # a last batch too small to share
                return None
            inputs = [self.processes.shard(x) for x in inputs]
            targets = {k: self.processes.shard(t) for k, t in targets.items()}
        return ([x.to(self.device) for x in inputs],
                {k: t.to(self.device) for k, t in targets.items()})

    def _by_output(self, outputs: torch.Tensor | tuple[torch.Tensor, ...],
                   ) -> dict[str, torch.Tensor]:
        """The network's outputs by name (a network with several returns a tuple)."""
        if isinstance(outputs, torch.Tensor):
            return {self.output_names[0]: outputs}
        return dict(zip(self.output_names, outputs, strict=True))

    def _loss(self, inputs: list[torch.Tensor], targets: Targets,
              batch_size: int) -> torch.Tensor:
        """The batch's loss (with the regularisation penalty) as this process contributes it:
        the weighted sum of the heads' losses."""
        with autocast(self.train, self.device):
            outputs = self._by_output(self.runner(*inputs))
            size = len(inputs[0])
            loss = torch.zeros((), device=self.device)
            for head in self.heads:
                value = head(outputs[head.output], targets[head.output])
                self._observe(head, outputs[head.output], targets[head.output], value)
                part = value * head.weight
                if self.processes is not None:
                    # DDP averages gradients over processes; weighting each part by its share
                    # of the batch makes that average the gradient of the whole batch's loss
                    world = self.processes.world
                    part = part * (world if head.sum_reduced else world * size / batch_size)
                loss = loss + part
            for reg in self.regularizations:
                penalty = regularization_penalty(self.model, reg)
                if penalty is not None:
                    loss = loss + penalty
        return loss

    def _batch_loss(self, loss: torch.Tensor) -> float:
        """The whole batch's loss, the same in every process."""
        if self.processes is None:
            return loss.item()
        return distributed.sum_across(loss).item() / self.processes.world

    # ----------------------------------------------------------------------- measuring

    def measure(self, epoch: int) -> dict[str, float]:
        """Loss and metrics on the validation split. Without one, the training metrics the
        steps did not report (metric learning's knn_accuracy) from a pass over the training
        split."""
        data = self.dataset
        if data.val is None and all(f"train_{head.prefix}{name}" in self.stepped
                                    for head in self.heads for name in head.metrics):
            return {}
        evaluated = self.evaluated()
        if self.processes is not None:  # every process then evaluates the same model
            distributed.share_buffers(evaluated)
        if data.val is not None:
            return {f"val_{k}": v for k, v in self.evaluate(evaluated, data.val).items()}
        values = self.evaluate(evaluated, data.train)
        return {f"train_{k}": v for k, v in values.items()
                if k != "loss" and f"train_{k}" not in self.stepped}

    def evaluate(self, model: nn.Module, data: TensorSet) -> dict[str, float]:
        """Loss and metrics over a whole split, under inference mode: the weighted total
        `loss`, and with several heads each one's `<output>_loss` and metrics. The metrics
        are tallied batch by batch: exact over the split, in memory that does not grow."""
        model.eval()
        tallies = {head.output: head.tally() for head in self.heads}
        totals, count = dict.fromkeys(tallies, 0.0), 0
        with torch.inference_mode():
            for inputs, targets in batches(data, self.train.batch_size, None):
                outputs = self._by_output(model(*(x.to(self.device) for x in inputs)))
                size = len(inputs[0])
                for head in self.heads:
                    out, target = outputs[head.output], targets[head.output].to(self.device)
                    totals[head.output] += head(out, target).item() * size
                    head.add(tallies[head.output], out, target)
                count += size
        losses = {name: total / max(count, 1) for name, total in totals.items()}
        result = {"loss": sum(head.weight * losses[head.output] for head in self.heads)}
        for head in self.heads:
            if head.prefix:
                result[f"{head.prefix}loss"] = losses[head.output]
        for head in self.heads:
            result.update(head.named(tallies[head.output].compute()))
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
            rule = self.train.early_stopping
            watched = rule.metric if rule else "val_loss" if self.has_val else "train_loss"
            write_curves(run_dir, result.history, self.spec.name, result.best_epoch, watched)
        write_run_report(run_dir, self.report_lines(result, test), [
            *([("[model.safetensors](model.safetensors)", "the best weights")] if kept
              else []),
            ("[data.json](data.json)", "class labels and normalisation, for inference"),
            ("[metrics.csv](metrics.csv), [metrics.json](metrics.json)", "per-epoch numbers"),
            *([("[curves.png](curves.png)", "loss and metrics, training beside validation, "
                "the best epoch marked; the learning rate")]
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


def autocast(train: TrainConfig, device: torch.device) -> AbstractContextManager[Any]:
    """torch.autocast in the precision `train` asks for, or nothing at full precision."""
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
