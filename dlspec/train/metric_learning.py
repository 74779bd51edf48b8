"""The session of `task: metric_learning`: one network embeds a sample and its partners.

Each training batch holds every sample with the partners drawn for it from the training split
by the epoch's generator `order`, so a run is deterministic and resumes exactly:

* triplet: a positive (another sample of its class, where the class has one) and a negative
  (a sample of another class);
* contrastive, cosine_embedding: one partner, of its class or of another with even odds (a
  random draw), and y = 1 (same class) or -1.

A batch's inputs are `(B, k, *shape)`, a sample and its k - 1 partners; one forward pass
embeds all B·k of them, so every member goes through the same weights (what a siamese or
triplet network is). Validation and test losses draw partners within their own split from a
generator seeded with `train.seed`, the same every epoch, so `val_loss` compares across
epochs. `knn_accuracy` classifies a split's embeddings by their nearest training embedding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from dlspec.data import DataSplits, TensorSet
from dlspec.graph import ShapedGraph
from dlspec.train.engine import Run
from dlspec.train.heads import Head
from dlspec.train.losses import PAIR_LOSSES, regularization_penalty
from dlspec.train.metrics import knn_accuracy
from dlspec.train.supervised import (
    Step,
    SupervisedSession,
    Targets,
    autocast,
    batches,
    prepare,
)

if TYPE_CHECKING:
    from dlspec.tasks.metric_learning import MetricLearning


class Classes:
    """Where each class's samples lie in a split, for drawing partners by class.

    The split's positions sorted by class (`order`): class c holds `order[starts[c] :
    starts[c] + counts[c]]`; `rank` is each sample's place in `order`.
    """

    def __init__(self, labels: torch.Tensor):
        _, self.index = torch.unique(labels.reshape(-1), return_inverse=True)  # (N,) 0..K-1
        self.order = torch.argsort(self.index, stable=True)  # (N,)
        self.counts = torch.bincount(self.index)  # (K,)
        self.starts = torch.cumsum(self.counts, 0) - self.counts  # (K,)
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(self.order))

    def __len__(self) -> int:
        return len(self.index)


def _uniform(generator: torch.Generator, sizes: torch.Tensor) -> torch.Tensor:
    """A whole number drawn uniformly in [0, size) for each of `sizes` (each ≥ 1)."""
    drawn = (torch.rand(len(sizes), generator=generator) * sizes).long()
    return torch.minimum(drawn, sizes - 1)


def draw_triplets(classes: Classes, anchors: torch.Tensor,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A positive and a negative (positions in the split) for each anchor position: another
    sample of its class (itself only when it is alone in its class) and a sample of another
    class (itself only when the split holds one class).

    Example:
        >>> classes = Classes(torch.tensor([0, 0, 1, 1, 1]))
        >>> positive, negative = draw_triplets(classes, torch.tensor([0, 2]),
        ...                                    torch.Generator().manual_seed(0))
        >>> positive[0].item(), classes.index[negative[0]].item()
        (1, 1)
    """
    label = classes.index[anchors]
    count, start = classes.counts[label], classes.starts[label]  # (B,) each
    own = classes.rank[anchors] - start  # the anchor's place within its class
    pick = _uniform(generator, (count - 1).clamp(min=1))
    pick = torch.where(count > 1, pick + (pick >= own).long(), own)  # skip the anchor
    positive = classes.order[start + pick]
    outside = len(classes) - count  # samples of other classes
    pick = _uniform(generator, outside.clamp(min=1))
    pick = pick + torch.where(pick >= start, count, 0)  # skip the anchor's class
    negative = torch.where(outside > 0, classes.order[pick.clamp(max=len(classes) - 1)],
                           anchors)
    return positive, negative


def draw_pairs(classes: Classes, anchors: torch.Tensor,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A partner for each anchor position, of its class or of another with even odds; and
    y (B,) float, 1.0 for a same-class pair and -1.0 otherwise."""
    positive, negative = draw_triplets(classes, anchors, generator)
    same = torch.rand(len(anchors), generator=generator) < 0.5
    return torch.where(same, positive, negative), same.float() * 2 - 1


def start_metric_learning(task: MetricLearning, run: Run) -> MetricLearningSession:
    """Load the data, build the network (its one output: the embedding): the session."""
    (shaped,) = run.shaped.values()  # the task's check allows one network
    data, heads = prepare(task, run.spec, shaped, run.base_dir)
    return MetricLearningSession(task, run, shaped, data, heads)


class MetricLearningSession(SupervisedSession):
    """A supervised session whose batches are samples with their partners and whose loss
    compares their embeddings."""

    def __init__(self, task: MetricLearning, run: Run, shaped: ShapedGraph,
                 data: DataSplits, heads: list[Head]):
        super().__init__(task, run, shaped, data, heads)
        (self.head,) = heads
        self.pairs = self.head.section.type in PAIR_LOSSES
        self.classes = Classes(data.train.targets[self.head.output])

    # ----------------------------------------------------------------------- training

    def partners(self, classes: Classes, anchors: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Each anchor with its partners, (B, k) positions in the split (k = 2 for a pair
        loss, 3 for triplets); and each pair's y (B,) (all 1.0 for triplets)."""
        if self.pairs:
            partner, same = draw_pairs(classes, anchors, generator)
            return torch.stack([anchors, partner], dim=1), same
        positive, negative = draw_triplets(classes, anchors, generator)
        return torch.stack([anchors, positive, negative], dim=1), torch.ones(len(anchors))

    def _batches(self, data: TensorSet, order: torch.Generator) -> Iterator[Step]:
        """The batches of the shuffled training split, each sample with its partners drawn
        from `order`: inputs (B, k, *shape), the target y (B,)."""
        inputs = data.tensors()
        for chosen in self._epoch_positions(data, order):
            members, same = self.partners(self.classes, chosen, order)
            yield Step([x[members] for x in inputs.values()], {self.head.output: same},
                       len(chosen))

    def _augment(self, inputs: list[torch.Tensor], targets: Targets,
                 order: torch.Generator) -> tuple[list[torch.Tensor], Targets]:
        """Every member of every pair or triplet randomly changed on its own."""
        members = inputs[0].shape[1]
        flat, _ = super()._augment([x.flatten(0, 1) for x in inputs], {}, order)
        return [x.unflatten(0, (-1, members)) for x in flat], targets

    def _loss(self, inputs: list[torch.Tensor], targets: Targets,
              batch_size: int) -> torch.Tensor:
        """The loss of a batch's pairs or triplets, one forward pass embedding all their
        members, with the regularisation penalty."""
        members = inputs[0].shape[1]
        with autocast(self.train, self.device):
            embedded = self.runner(*(x.flatten(0, 1) for x in inputs))  # (B·k, D)
            loss = self.compare(embedded.float().unflatten(0, (-1, members)),
                                targets[self.head.output])
            for reg in self.regularizations:
                penalty = regularization_penalty(self.model, reg)
                if penalty is not None:
                    loss = loss + penalty
        return loss

    def compare(self, embedded: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """The loss of embedded pairs or triplets (B, k, D); `same` (B,) is a pair's y."""
        loss: nn.Module = self.head.loss
        first, second = embedded[:, 0], embedded[:, 1]  # (B, D) each
        kind = self.head.section.type
        if kind == "contrastive":  # PyTorch's hinge embedding loss of the L2 distance
            return loss(F.pairwise_distance(first, second), same)
        if kind == "cosine_embedding":
            return loss(first, second, same)
        return loss(first, second, embedded[:, 2])  # anchor, positive, negative

    # ----------------------------------------------------------------------- measuring

    def evaluate(self, model: nn.Module, data: TensorSet) -> dict[str, float]:
        """The loss over a split's pairs or triplets (partners drawn within the split, the
        same every time) and its embeddings' k-NN accuracy against the training split's
        (the training split's own: each sample against the others)."""
        embedded = self.embed(model, data)  # (N, D)
        labels = data.targets[self.head.output]
        generator = torch.Generator().manual_seed(self.train.seed)
        members, same = self.partners(Classes(labels), torch.arange(len(data)), generator)
        with torch.inference_mode():
            loss = self.compare(embedded[members].to(self.device), same.to(self.device))
        result = {"loss": loss.item()}
        if "knn_accuracy" in self.head.metrics:  # the one metric the task suits
            train = self.dataset.train
            reference = None if data is train else self.embed(model, train)
            result["knn_accuracy"] = knn_accuracy(
                embedded, labels, reference,
                None if reference is None else train.targets[self.head.output])
        return result

    def embed(self, model: nn.Module, data: TensorSet) -> torch.Tensor:
        """A whole split's embeddings (N, D), on the CPU, under inference mode."""
        model.eval()
        parts = []
        with torch.inference_mode():
            for inputs, _ in batches(data, self.train.batch_size, None):
                parts.append(model(*(x.to(self.device) for x in inputs)).float().cpu())
        return torch.cat(parts)
