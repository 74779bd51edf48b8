"""A built-in measure of a CycleGAN's translations: a small CNN, trained on the real images of
both domains, says which domain a translated image looks like it comes from.

`translated_as_b` is the share of translated A images (G_ab(a)) it takes for domain B, and
`translated_as_a` the other way round: a generator that does its job scores near 1, one that
leaves its input unchanged near 0. The classifier (two stride-2 convolutions, global average
pooling, a linear layer: a few thousand parameters, for images of any size) is declared in
dlspec's own spec language and trained for a few epochs with the run's seed before the
CycleGAN is initialised, so the CycleGAN's random streams stay untouched; it is kept in
`<run>/domain_classifier/` and loaded from there when the run resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from dlspec.data import DataSplits

EPOCHS = 4
BATCH = 64
_CLASSIFIER = """\
dlspec: 1
name: domain_classifier
description: which of a CycleGAN's two domains an image comes from
inputs:
  image: {shape: SHAPE}
network:
  - {name: conv1, conv2d: {out_channels: 16, kernel_size: 3, stride: 2, padding: 1}}
  - relu
  - {name: conv2, conv2d: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}}
  - relu
  - adaptive_avgpool2d: 1
  - flatten
  - {name: logits, linear: 2}
"""
_DOMAINS = {"a": 0, "b": 1}


@dataclass
class DomainJudge:
    """The trained classifier (class 0: domain A, 1: domain B) and its test accuracy."""

    model: torch.nn.Module
    test_accuracy: float

    @classmethod
    def prepare(cls, folder: Path, data: DataSplits, seed: int) -> DomainJudge:
        """Train the classifier into `folder`, or load it when it is already there."""
        from safetensors.torch import load_model, save_model

        model = _classifier(tuple(next(iter(data.train.tensors().values())).shape[1:]), seed)
        weights, numbers = folder / "model.safetensors", folder / "metrics.json"
        if weights.is_file() and numbers.is_file():
            load_model(model, str(weights))
            return cls(model.eval(), json.loads(numbers.read_text())["test_accuracy"])
        _train(model, *_labelled(data, "train"), seed)
        judge = cls(model.eval(), 0.0)
        images, domains = _labelled(data, "test")
        judge.test_accuracy = float((judge.classify(images) == domains).float().mean())
        folder.mkdir(parents=True, exist_ok=True)
        save_model(model, str(weights))
        numbers.write_text(json.dumps({"test_accuracy": judge.test_accuracy,
                                       "epochs": EPOCHS}, indent=2))
        (folder / "spec.yaml").write_text(_spec_text(tuple(images.shape[1:])))
        return judge

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """The domain index (0: A, 1: B) of each image (N, C, H, W)."""
        with torch.inference_mode():
            return torch.cat([self.model(part.float()).argmax(dim=-1)
                              for part in images.split(256)])

    def share_of(self, images: torch.Tensor, domain: str) -> float:
        """The share of `images` taken for `domain` ("a" or "b")."""
        return float((self.classify(images) == _DOMAINS[domain]).float().mean())


def _spec_text(shape: tuple[int, ...]) -> str:
    return _CLASSIFIER.replace("SHAPE", json.dumps(list(shape)))


def _classifier(shape: tuple[int, ...], seed: int) -> torch.nn.Module:
    from dlspec.compile import compile_graph
    from dlspec.graph import infer_shapes
    from dlspec.spec.expand import expand
    from dlspec.spec.model import Spec

    spec = Spec.model_validate(yaml.safe_load(_spec_text(shape)))  # written here: valid
    torch.manual_seed(seed)
    return compile_graph(infer_shapes(expand(spec)["domain_classifier"]))


def _labelled(data: DataSplits, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of both domains in one split, with their domain indices."""
    images = getattr(data, split)
    (domain_a,) = images.tensors().values()
    domain_b = images.target
    return (torch.cat([domain_a, domain_b]),
            torch.cat([torch.zeros(len(domain_a), dtype=torch.long),
                       torch.ones(len(domain_b), dtype=torch.long)]))


def _train(model: torch.nn.Module, images: torch.Tensor, domains: torch.Tensor,
           seed: int) -> None:
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(EPOCHS):
        for chosen in torch.randperm(len(images), generator=order).split(BATCH):
            loss = F.cross_entropy(model(images[chosen]), domains[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
