"""A built-in measure of generated digits: a LeNet, trained by dlspec on the real digits,
labels the generator's samples.

Two numbers say whether the samples look like digits and whether all of them are made:
`digit_confidence`, the classifier's mean top probability over 1,000 generated samples (a
blurred or alien sample gets a low one), and `digit_class_min` / `digit_class_max`, the
smallest and largest share of a class among them (0.1 each when all ten are equally made;
a collapsed generator shows 0 and a large maximum). The same idea as the Inception score,
with a classifier of the data at hand.

The classifier is an ordinary dlspec run (LeNet-5 with ReLU and max pooling, 15 epochs,
the GAN's seed) on the digits resized and normalised exactly as the GAN's real samples, so
it is reproducible; it is trained once into `<run>/classifier/` and loaded from there when
the run resumes. Training it first leaves the GAN's own random streams untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from dlspec.data import DataSplits
from dlspec.spec.model import Spec

SAMPLES = 1000
_LENET = """\
dlspec: 1
name: digits_classifier
description: LeNet-5 (ReLU, max pooling) judging a GAN's generated digits
inputs:
  image: {shape: [1, HEIGHT, WIDTH]}
network:
  - {name: conv1, conv2d: {out_channels: 6, kernel_size: 5, padding: 2}}
  - relu
  - maxpool2d: 2
  - {name: conv2, conv2d: {out_channels: 16, kernel_size: 5, padding: 2}}
  - relu
  - maxpool2d: 2
  - flatten
  - {name: fc1, linear: 120}
  - relu
  - {name: fc2, linear: 84}
  - relu
  - {name: logits, linear: 10}
task: classification
loss: cross_entropy
optimizer: {type: adam, lr: 2.0e-3}
train: {epochs: 15, batch_size: 64}
"""


def judges_digits(spec: Spec, sample_shape: tuple[int, ...]) -> bool:
    """Whether a GAN's real data are the built-in digits as single-channel images."""
    data = spec.data
    return (data is not None and data.dataset == "digits" and len(sample_shape) == 3
            and sample_shape[0] == 1 and min(sample_shape[1:]) >= 4)


class DigitsJudge:
    """The trained classifier, and the numbers it gives a batch of generated digits."""

    def __init__(self, model: torch.nn.Module, test_accuracy: float | None):
        self.model = model.eval()
        self.test_accuracy = test_accuracy

    @classmethod
    def prepare(cls, folder: Path, sample_shape: tuple[int, ...], data: DataSplits,
                seed: int) -> DigitsJudge:
        """Train the classifier into `folder`, or load it when it is already there."""
        from dlspec.graph import infer_shapes
        from dlspec.spec.expand import expand
        from dlspec.tasks import get_task
        from dlspec.train.engine import train

        text = _LENET.replace("HEIGHT", str(sample_shape[1])).replace("WIDTH",
                                                                     str(sample_shape[2]))
        config = yaml.safe_load(text)
        stats = next(iter(data.normalization.values()), None)
        config["data"] = {"dataset": "digits", "resize": list(sample_shape[1:]),
                          **({"normalize": stats} if stats is not None else {})}
        config["train"]["seed"] = seed
        spec = Spec.model_validate(config)  # written here, so known to be valid
        shaped = infer_shapes(expand(spec)["digits_classifier"])
        weights = folder / "model.safetensors"
        if weights.is_file():
            from safetensors.torch import load_model

            from dlspec.compile import compile_graph

            model = compile_graph(shaped)
            load_model(model, str(weights))
            return cls(model, None)
        result = train(get_task("classification"), spec, {"digits_classifier": shaped}, folder)
        accuracy = result.test["accuracy"] if result.test is not None else None
        return cls(result.model.cpu(), accuracy)

    def judge(self, samples: torch.Tensor, labels: torch.Tensor | None = None
              ) -> dict[str, float]:
        """digit_confidence, digit_class_min and digit_class_max of samples (N, 1, H, W);
        with the digits a conditional generator was asked for (`labels`), also
        digit_label_accuracy: the share the classifier reads as the digit asked for."""
        with torch.inference_mode():
            probabilities = self.model(samples.float()).softmax(dim=-1)  # (N, 10)
        top, classes = probabilities.max(dim=-1)
        shares = torch.bincount(classes, minlength=10).float() / len(classes)
        numbers = {"digit_confidence": top.mean().item(),
                   "digit_class_min": shares.min().item(),
                   "digit_class_max": shares.max().item()}
        if labels is not None:
            numbers["digit_label_accuracy"] = (classes == labels.cpu()).float().mean().item()
        return numbers
