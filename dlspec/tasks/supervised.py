"""What every supervised task shares: one network, trained on (inputs, targets) batches.

A supervised task file subclasses `SupervisedTask` and says only what differs: how targets
meet the network's outputs (`align_target`), how augmentation moves them (`augment`), its
default metrics and which metrics suit it. The session (batches, steps, evaluation, the run
folder) is dlspec.train.supervised's; the engine runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlspec.errors import Problem, SpecError
from dlspec.tasks.base import Task

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch

    from dlspec.data import DataSplits, TensorSet
    from dlspec.graph import ShapedGraph
    from dlspec.spec.model import Spec
    from dlspec.spec.sections import AugmentConfig
    from dlspec.train.engine import Run, Session

# metrics of class maps; any other metric is one of whole samples
POSITION_METRICS = ("pixel_accuracy", "iou", "dice")
# metrics of embeddings (metric learning), and only of them
EMBEDDING_METRICS = ("knn_accuracy",)


class SupervisedTask(Task):
    """A task with one network trained on labelled samples."""

    data_parallel = True
    # trains batch by batch from the data's splits: inputs may be read from files as needed
    streams = True

    def start(self, run: Run) -> Session:
        """The supervised session: data loaded and checked, the network built."""
        from dlspec.train.supervised import start_supervised

        return start_supervised(self, run)

    def align(self, outputs: torch.Tensor, target: torch.Tensor,
              binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs and targets as the loss takes them: class indices for a classifier
        (unless the loss is binary cross-entropy), else values shaped like the outputs."""
        if self.classifies and not binary:
            return outputs, target.reshape(-1).long()
        return outputs, target.reshape(outputs.shape).to(outputs.dtype)

    def scored(self, outputs: torch.Tensor,
               target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole split's outputs and targets as the metrics take them."""
        return outputs, target

    def load(self, spec: Spec, shaped: ShapedGraph, base: Path) -> DataSplits:
        """The data as this task trains on it: targets keyed by output name. One output's
        target is shaped for the task and checked against it; several outputs each get
        theirs as the output calls for (class indices for logits, values otherwise)."""
        from dlspec.data import check_outputs, load_data

        assert spec.data is not None
        outputs = {name: tuple(info.shape) for name, info in shaped.outputs().items()}
        several = len(outputs) > 1
        data = load_data(spec.data, spec.task, dict(shaped.graph.inputs),
                         seed=spec.train.seed, base_dir=base,
                         outputs=outputs if several else None, streamable=self.streams,
                         workers=spec.train.num_workers)
        if several:
            return data
        ((name, shape),) = outputs.items()
        check_outputs(data, shape, spec.task)
        return with_targets(data, lambda split: {name: split.target} if split.targets else {})

    def suits(self, metric: str) -> bool:
        """Whether `metric` means something for this task: class-map metrics for tasks that
        classify pixels, embedding metrics for tasks that learn embeddings, and only for
        them."""
        if (metric in EMBEDDING_METRICS) != self.embeds:
            return False
        return self.embeds or (metric in POSITION_METRICS) == self.classifies_positions

    def augment(self, inputs: list[torch.Tensor], target: torch.Tensor,
                augment: AugmentConfig, order: torch.Generator,
                stats: list[Any]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """A training batch randomly changed as `augment:` says (targets stay)."""
        from dlspec.data.augment import augment_batch

        return augment_batch(inputs, augment, order, stats), target

    def check_metrics(self, spec: Spec) -> None:
        """Class-map metrics for tasks that classify positions, and only for them: a
        per-sample metric of masks (or a per-pixel one of classes) would mean nothing."""
        listed = spec.train.metrics if isinstance(spec.train.metrics, list) else []
        wrong = [(i, name) for i, name in enumerate(listed) if not self.suits(name)]
        if wrong:
            from dlspec.train.metrics import METRICS

            hint = "use " + ", ".join(name for name in METRICS if self.suits(name))
            raise SpecError([Problem(("train", "metrics", i), f"{name} is not a metric of task "
                                     f"{self.name}", hint) for i, name in wrong])


def with_targets(data: DataSplits,
                 targets: Callable[[TensorSet], dict[str, torch.Tensor]]) -> DataSplits:
    """`data` with each split's targets replaced by `targets(split)`."""
    from dataclasses import replace

    from dlspec.data import TensorSet

    def changed(split: TensorSet | None) -> TensorSet | None:
        return None if split is None else TensorSet(split.inputs, targets(split))

    train = changed(data.train)
    assert train is not None
    return replace(data, train=train, val=changed(data.val), test=changed(data.test))
