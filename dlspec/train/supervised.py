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
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from dlspec.compile import compile_graph
from dlspec.data import BAD_FILE_HINT, WRONG_SIZE_HINT, DataSplits, TensorSet, skipped_files
from dlspec.data.augment import check_augment
from dlspec.data.lazy import BatchReader, Reader, is_lazy
from dlspec.errors import Problem, SpecError
from dlspec.export.metadata import DeploymentInfo
from dlspec.graph import ShapedGraph
from dlspec.runfiles import WEIGHTS
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
from dlspec.train.epochstate import EpochProgress, EpochState
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


def chunks(count: int, batch_size: int, order: torch.Generator | None) -> list[torch.Tensor]:
    """The positions of each batch of a pass over `count` samples: in the order `order`
    draws, or in order when it is None."""
    index = torch.randperm(count, generator=order) if order is not None else torch.arange(count)
    return list(index.split(batch_size))


def batches(data: TensorSet, batch_size: int,
            order: torch.Generator | None) -> Iterator[tuple[list[torch.Tensor], Targets]]:
    """Mini-batches indexed straight out of the tensors: no per-sample Python work."""
    return _indexed(data, chunks(len(data), batch_size, order))


class Step(NamedTuple):
    """One training batch as a process gets it."""

    inputs: list[torch.Tensor]
    targets: Targets
    size: int  # the samples of the whole batch, in every process together
    # (start, stop): this process's samples of the whole batch, when it read only those
    # (data read from files, shared between data-parallel processes); None: it holds all
    share: tuple[int, int] | None = None
    read: torch.Tensor | None = None  # the samples that could be read; None: all
    failures: list[str] = []  # noqa: RUF012 (a NamedTuple's default is never mutated)
    refused: list[str] = []  # noqa: RUF012  failures never skipped: images of another size


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
    resumes_within_epoch = True

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
        self.norms: GradientNorms | None = None
        # the epoch in progress, and what a checkpoint taken within one restored
        self.progress = EpochProgress(torch.Generator().get_state())
        self.resumed: EpochState | None = None
        self.continue_from: torch.Tensor | None = None
        self.readers: dict[int, Reader] = {}  # split → its reader, for data read from files
        if is_lazy(data.train.inputs):  # how it is read: a user with big data wants to know
            self.notes = (f"data: {data.source}",)
        self.skipped: set[str] = set()  # unreadable files left out (data.bad_files: skip)
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
        metrics (`train_accuracy`, …) of the outputs the steps produced. After a checkpoint
        taken between batches, the epoch goes on from the batch after it."""
        model, train, optimizer = self.model, self.train, self.optimizers["model"]
        schedule, data = self.schedules["model"], self.dataset.train
        callbacks.on_epoch_start(epoch, epochs, math.ceil(len(data) / train.batch_size))
        model.train()
        hold_frozen_statistics(model)
        self.norms = GradientNorms(model) if train.log_grad_norms else None
        progress = self._begin_epoch(order)
        for batch, step in enumerate(self._batches(data, order), progress.batches + 1):
            inputs, targets = step.inputs, step.targets
            if self.spec.augment is not None:  # drawn from the batch order: resumable
                inputs, targets = self._augment_step(step, order)
            inputs, targets = self._readable(step, inputs, targets)
            size = step.size if step.read is None else step.size - int((~step.read).sum())
            part = self._part(inputs, targets, sharded=step.share is not None)
            if part is None:
                continue
            loss = self._loss(*part, batch_size=size)
            value = finite(self._batch_loss(loss), epoch, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.norms is not None:
                self.norms.measure()
            _clip(model, train)
            optimizer.step()
            if self.average is not None:
                self.average.update_parameters(model)
            schedule.step_batch()
            progress.total += value * size
            progress.count += size
            progress.batches = batch
            callbacks.on_batch(batch, value, size)
        return {"epoch": float(epoch), "train_loss": progress.total / max(progress.count, 1),
                **self._step_scores(progress.count), "lr": learning_rate(optimizer),
                **(self.norms.means() if self.norms is not None else {})}

    def _begin_epoch(self, order: torch.Generator) -> EpochProgress:
        """A fresh epoch's tallies, or those of the epoch a checkpoint was taken within
        (the batch order then set back to the epoch's start, to draw its permutation)."""
        resumed, self.resumed = self.resumed, None
        self.step_tallies = {head.output: head.tally() for head in self.heads}
        self.step_losses = {head.output: torch.zeros((), device=self.device)
                            for head in self.heads if head.prefix}
        self.stepped, self.observed = set(), False
        if resumed is None:
            self.progress = EpochProgress(order.get_state())
            self.continue_from = None
            return self.progress
        self.progress = resumed.progress
        self.continue_from = order.get_state()  # after the batches done
        order.set_state(resumed.progress.begun)
        resumed.restore(self)
        return self.progress

    def _epoch_positions(self, data: TensorSet, order: torch.Generator) -> list[torch.Tensor]:
        """The positions of each batch of the epoch still to train: all of them, or after a
        checkpoint taken within the epoch those after it (the order's state then as it was
        after them)."""
        shuffled = order if self.spec.data is None or self.spec.data.shuffle else None
        positions = chunks(len(data), self.train.batch_size, shuffled)
        if self.continue_from is not None:
            order.set_state(self.continue_from)
            positions, self.continue_from = positions[self.progress.batches:], None
        return positions

    def epoch_state(self) -> dict[str, Any]:
        """The epoch in progress (see `Session.epoch_state`)."""
        return EpochState.taken(self).as_dict()

    def resume_within(self, state: dict[str, Any]) -> None:
        """Continue the next epoch after the batches `state` counts."""
        self.resumed = EpochState.read(state, self)

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

    def _batches(self, data: TensorSet, order: torch.Generator) -> Iterator[Step]:
        """An epoch's training batches, in the order `order` draws (a task's session may
        add to each: metric learning draws every sample's partners). Data read from files
        is read by the split's `Reader`; each data-parallel process reads only its part of
        each batch."""
        positions = self._epoch_positions(data, order)
        if not is_lazy(data.inputs):
            for chosen, (inputs, targets) in zip(positions, _indexed(data, positions),
                                                 strict=True):
                yield Step(inputs, targets, len(chosen))
            return
        shares: list[tuple[int, int]] = []
        parts = positions
        if self.processes is not None:
            world, rank = self.processes.world, self.processes.rank
            positions = [p for p in positions if len(p) >= world]  # too small to share: dropped
            shares = [_share(len(p), world, rank) for p in positions]
            parts = [p[start:stop] for p, (start, stop) in zip(positions, shares, strict=True)]
        for number, batch in enumerate(self._reader(data)(parts)):
            yield Step(batch.inputs, batch.targets, len(positions[number]),
                       shares[number] if shares else None, batch.read, batch.failures,
                       batch.refused)

    def _reader(self, data: TensorSet) -> Reader:
        """The reader of a split read from files (kept: its workers stay up)."""
        key = id(data)
        if key not in self.readers:
            self.readers[key] = Reader(BatchReader(data.inputs, data.targets),
                                       self.train.num_workers, self.device.type == "cuda")
        return self.readers[key]

    def _augment_step(self, step: Step, order: torch.Generator,
                      ) -> tuple[list[torch.Tensor], Targets]:
        """`_augment` of a step. A process holding only its share of the batch augments
        it in its place in the whole batch (the others' places left zero), so that every
        sample is changed as a one-process run changes it."""
        if step.share is None:
            return self._augment(step.inputs, step.targets, order)
        start, stop = step.share
        inputs, targets = self._augment([_placed(x, start, step.size) for x in step.inputs],
                                         {k: _placed(t, start, step.size)
                                          for k, t in step.targets.items()}, order)
        return ([x[start:stop] for x in inputs],
                {k: t[start:stop] for k, t in targets.items()})

    def _readable(self, step: Step, inputs: list[torch.Tensor], targets: Targets,
                  ) -> tuple[list[torch.Tensor], Targets]:
        """The samples of a step that could be read. One that could not is refused with its
        file's name, or left out and counted when `data.bad_files` is skip."""
        if step.read is None:
            return inputs, targets
        data = self.spec.data
        assert data is not None
        if step.refused:
            raise SpecError(Problem(("data", data.source), step.refused[0], WRONG_SIZE_HINT))
        if data.bad_files == "refuse":
            raise SpecError(Problem(("data", data.source), step.failures[0], BAD_FILE_HINT))
        self.skipped.update(step.failures)
        keep = step.read
        return [x[keep] for x in inputs], {k: t[keep] for k, t in targets.items()}

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

    def _part(self, inputs: list[torch.Tensor], targets: Targets, sharded: bool = False,
              ) -> tuple[list[torch.Tensor], Targets] | None:
        """This process's part of a batch (unless it is `sharded` already), on its device;
        None when it gets no sample."""
        if self.processes is not None and not sharded:
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
            for inputs, targets in self._in_order(data):
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

    def _in_order(self, data: TensorSet) -> Iterator[tuple[list[torch.Tensor], Targets]]:
        """A split's batches in order, for measuring it whole (read by its `Reader` when
        it comes from files; unreadable samples refused or left out as in training)."""
        positions = chunks(len(data), self.train.batch_size, None)
        if not is_lazy(data.inputs):
            yield from _indexed(data, positions)
            return
        for batch in self._reader(data)(positions):
            step = Step(batch.inputs, batch.targets, len(batch.inputs[0]), None, batch.read,
                        batch.failures, batch.refused)
            yield self._readable(step, step.inputs, step.targets)

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
            save_weights(self.model, run_dir / WEIGHTS)
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
        if self.skipped:
            lines += [f"Data read from files: {skipped_files(self.skipped)} (data.bad_files: "
                      "skip).", ""]
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


def _indexed(data: TensorSet, positions: list[torch.Tensor],
             ) -> Iterator[tuple[list[torch.Tensor], Targets]]:
    """The batches at `positions` of a split held in memory."""
    inputs = data.tensors()
    for chosen in positions:
        yield ([tensor[chosen] for tensor in inputs.values()],
               {name: tensor[chosen] for name, tensor in data.targets.items()})


def _share(size: int, world: int, rank: int) -> tuple[int, int]:
    """Process `rank`'s samples of a batch of `size`, as `Processes.shard` splits it."""
    base, extra = divmod(size, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _placed(x: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """`x` at rows start… of a zero tensor of `size` rows."""
    whole = x.new_zeros((size, *x.shape[1:]))
    whole[start:start + len(x)] = x
    return whole


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
