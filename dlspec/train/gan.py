"""`task: gan`: a generator trained against a discriminator, and the run folder that shows it.

Each batch of real samples trains the discriminator once (on it and on as many generated
samples); after every `train.n_critic` discriminator steps the generator takes one step on a
fresh batch of noise. Each network has its own optimizer and schedule (`optimizer:` and
`schedule:` name them per network, or give one for both). A batch-stepped schedule counts
its own network's steps. Library code: it never prints; progress goes to `Callbacks`.

Randomness: the networks are initialised from `train.seed` (generator first); batches are
ordered by a generator seeded with it; noise and gradient-penalty mixing draw from torch's
global generator, seeded with it too. All three states are checkpointed, so a resumed run
continues exactly as an uninterrupted one would (on CPU).

The run folder: model.safetensors (the generator — its moving average when `train.ema` is
set — which `dlspec export` exports), discriminator.safetensors, metrics.csv/json,
curves.png, samples/epoch_NNN.png (the same noise every epoch), the checkpoint files,
spec.resolved.yaml, data.json and report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from dlspec.compile import compile_graph
from dlspec.data import DataSplits, load_data
from dlspec.errors import Problem, SpecError
from dlspec.export.metadata import DeploymentInfo
from dlspec.graph import InputDecl, ShapedGraph
from dlspec.runfiles import WEIGHTS
from dlspec.spec.model import Spec
from dlspec.spec.sections import GanLoss, NonSaturatingLoss, TrainConfig
from dlspec.train.checkpoint import save_weights
from dlspec.train.digits_judge import SAMPLES as JUDGED_SAMPLES
from dlspec.train.digits_judge import DigitsJudge, judges_digits
from dlspec.train.engine import (
    Callbacks,
    FitResult,
    Run,
    Session,
    finite,
    learning_rate,
    seed_weights,
    stop_lines,
    write_run_report,
)
from dlspec.train.gan_checks import (
    check_gan,
    check_label_embeddings,
    check_range,
    check_settings,
    gan_roles,
    label_inputs,
)
from dlspec.train.gan_objectives import GAN_OBJECTIVES, GanObjective
from dlspec.train.gan_outputs import Modes, SamplePictures, draw_latent, write_gan_curves
from dlspec.train.optim import make_optimizers
from dlspec.train.schedules import Schedule, make_schedule
from dlspec.train.supervised import batches

DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


@dataclass
class _Gan:
    """The two networks, their optimisers and schedules, and everything a step needs."""

    generator: nn.Module
    discriminator: nn.Module
    names: tuple[str, str]  # (generator, discriminator)
    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, Schedule]
    objective: GanObjective
    latent: dict[str, InputDecl]
    distributions: dict[str, Literal["normal", "uniform"]]
    train: TrainConfig
    device: torch.device
    average: torch.optim.swa_utils.AveragedModel | None = None
    order: torch.Generator = field(default_factory=torch.Generator)
    critic_steps: int = 0  # discriminator steps so far, over all epochs
    # a conditional GAN: the class-label inputs of the generator and the discriminator
    labels: tuple[str | None, str | None] = (None, None)
    num_classes: int = 0
    label_first: bool = False  # the discriminator declares its label before its sample

    @property
    def pair(self) -> nn.Module:
        """Both networks as one module: the checkpoint's weights, keys `<network>.<layer>`."""
        return nn.ModuleDict(dict(zip(self.names, (self.generator, self.discriminator),
                                      strict=True)))

    @property
    def kept(self) -> nn.Module:
        """All weights a run folder is written from: both networks and the average."""
        return nn.ModuleList([self.pair, *([self.average] if self.average is not None else [])])

    @property
    def sampler(self) -> nn.Module:
        """The generator whose samples are shown and kept: its average, when there is one."""
        return self.average.module if self.average is not None else self.generator

    @property
    def conditional(self) -> bool:
        """Whether both networks read a class label."""
        return self.labels[0] is not None

    def noise(self, count: int, generator: torch.Generator | None = None,
              labels: torch.Tensor | None = None) -> tuple[list[torch.Tensor],
                                                           torch.Tensor | None]:
        """The generator's inputs for a batch, on the training device, and the class labels
        among them (a conditional GAN: `labels`, or drawn uniformly; otherwise None)."""
        noise = {k: v for k, v in self.latent.items() if k != self.labels[0]}
        drawn = dict(zip(noise, draw_latent(noise, self.distributions, count, generator),
                         strict=True))
        if self.labels[0] is not None:
            if labels is None:
                labels = torch.randint(self.num_classes, (count,), generator=generator)
            drawn[self.labels[0]] = labels
        inputs = [drawn[name].to(self.device) for name in self.latent]
        return inputs, labels.to(self.device) if labels is not None else None

    def score(self, samples: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's scores of samples (with their labels, when conditional)."""
        if labels is None:
            return self.discriminator(samples)
        # in the order the discriminator declares them: the label, or the sample, first
        if self.label_first:
            return self.discriminator(labels, samples)
        return self.discriminator(samples, labels)


def start_gan(run: Run) -> GanSession:
    """Check a `task: gan` spec against its data, build both networks: the session.

    Example:
        >>> spec = dlspec.load("specs/wgan_gp.yaml")
        >>> result = dlspec.train_spec(spec)  # the engine runs this session
        >>> result.fit.history[-1]["modes_covered"]
        8.0
    """
    spec, shaped, train = run.spec, run.shaped, run.train
    check_gan(spec, shaped)
    names = gan_roles(spec, list(shaped))
    check_settings(spec)
    data = _data(spec, shaped[names[1]], run.base_dir)
    labels = label_inputs(spec, *names)
    if labels[0] is not None:
        _check_conditional_data(spec, shaped, names, labels, data)
    check_range(spec, shaped[names[0]], next(iter(data.train.tensors().values())),
                bool(data.image_inputs))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    sample_shape = tuple(next(iter(shaped[names[0]].outputs().values())).shape)
    judge = (DigitsJudge.prepare(run.run_dir / "classifier", sample_shape, data, train.seed)
             if judges_digits(spec, sample_shape) else None)  # before the GAN's seeding
    gan = _setup(spec, shaped, names, run.epochs, len(data.train), run.device, labels,
                 data.num_classes or 0)
    return GanSession(spec, gan, data, run.run_dir, judge)


class GanSession(Session):
    """A GAN's run: the networks, the real data, the fixed noise its pictures show."""

    def __init__(self, spec: Spec, gan: _Gan, data: DataSplits, run_dir: Path,
                 judge: DigitsJudge | None):
        self.spec, self.gan, self.dataset, self.judge = spec, gan, data, judge
        self.saved, self.optimizers, self.schedules = gan.pair, gan.optimizers, gan.schedules
        self.average, self.samples = gan.average, len(data.train)
        (real,) = data.train.tensors().values()
        self.pictures = SamplePictures(run_dir / "samples", tuple(real.shape[1:]),
                                       next(iter(data.normalization.values()), None), real,
                                       rows=gan.num_classes if gan.conditional else None)
        self.modes = Modes.of(real, data.train.target)
        seed = gan.train.seed
        # the same noise every epoch, from its own generator: the pictures show one set
        # changing (a conditional GAN's: one class a row, or for points the classes in turn)
        self.fixed = gan.noise(self.pictures.count, torch.Generator().manual_seed(seed + 1),
                               self.pictures.labels(gan.num_classes) if gan.conditional
                               else None)
        self.judged = (gan.noise(JUDGED_SAMPLES, torch.Generator().manual_seed(seed + 2),
                                 torch.arange(JUDGED_SAMPLES) % gan.num_classes
                                 if gan.conditional else None)
                       if judge is not None else ([], None))

    def train_epoch(self, epoch: int, epochs: int, order: torch.Generator,
                    callbacks: Callbacks) -> dict[str, float]:
        """Discriminator and generator steps over the real samples."""
        self.gan.order = order
        return _epoch(self.gan, self.dataset, epoch, epochs, callbacks)

    def measure(self, epoch: int) -> dict[str, float]:
        """The fixed noise's samples drawn; modes covered; digits judged."""
        samples = _samples(self.gan, self.fixed[0])
        self.pictures.write(epoch, samples)
        record: dict[str, float] = {}
        if self.modes is not None:
            record.update(self.modes.coverage(samples.numpy(), _numpy(self.fixed[1])))
        if self.judge is not None:
            record.update(self.judge.judge(_samples(self.gan, self.judged[0]),
                                           self.judged[1]))
        return record

    def extra_state(self) -> dict[str, Any]:
        """The discriminator steps so far (they decide when the generator steps)."""
        return {"critic_steps": self.gan.critic_steps}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""
        self.gan.critic_steps = int(state["critic_steps"])

    def info(self) -> DeploymentInfo:
        """How `dlspec predict --sample` draws from the exported generator."""
        return generator_info(self.spec, self.gan.names[0], self.dataset)

    def trained(self) -> nn.Module:
        """The generator whose samples are kept (its average, when there is one)."""
        return self.gan.sampler

    def data(self) -> DataSplits:
        """The real data."""
        return self.dataset

    def write(self, run_dir: Path, result: FitResult, test: dict[str, float] | None) -> None:
        """Both networks' weights, the curves and report.md."""
        _write_run(run_dir, self.spec, self.gan, result, self.dataset)


def _data(spec: Spec, discriminator: ShapedGraph, base: Path) -> DataSplits:
    if spec.data is None:
        raise SpecError(Problem((), "training needs a `data:` section: the real samples",
                                "e.g. data: {dataset: digits}"))
    samples = {k: v for k, v in discriminator.graph.inputs.items() if v.dtype == "float32"}
    return load_data(spec.data, spec.task, samples, seed=spec.train.seed, base_dir=base)


def _check_conditional_data(spec: Spec, shaped: dict[str, ShapedGraph],
                            names: tuple[str, str], labels: tuple[str | None, str | None],
                            data: DataSplits) -> None:
    if data.num_classes is None:
        raise SpecError(Problem(("data",), f"a conditional GAN learns one class at a time, but "
                                f"{data.source} has no class labels",
                                "use labelled data (digits, eight_gaussians, an image folder)"))
    check_label_embeddings(shaped, {network: label for network, label in zip(
        names, labels, strict=True) if label is not None}, data.num_classes)


def _setup(spec: Spec, shaped: dict[str, ShapedGraph], names: tuple[str, str], epochs: int,
           samples: int, device: torch.device, labels: tuple[str | None, str | None],
           num_classes: int) -> _Gan:
    train = spec.train
    loss = spec.loss if spec.loss is not None else NonSaturatingLoss()
    if isinstance(loss, dict) or loss.type not in GAN_OBJECTIVES:  # check_gan says why
        raise SpecError(Problem(("loss",), "task gan trains with a GAN objective",
                                f"use one of {', '.join(GAN_OBJECTIVES)}"))
    seed_weights(train)
    generator = compile_graph(shaped[names[0]]).to(device)
    discriminator = compile_graph(shaped[names[1]]).to(device)
    models = dict(zip(names, (generator, discriminator), strict=True))
    optimizers = make_optimizers(spec.optimizer, models)
    batches_per_epoch = max(1, samples // train.batch_size)
    steps = {names[0]: max(1, round(batches_per_epoch / train.n_critic)),
             names[1]: batches_per_epoch}
    schedules = network_schedules(spec, optimizers, epochs, steps)
    average = (torch.optim.swa_utils.AveragedModel(
        generator, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(train.ema),
        use_buffers=True) if train.ema is not None else None)
    assert spec.networks is not None  # check_gan: a GAN has networks
    inputs = spec.networks[names[0]].inputs
    distributions = {k: v.distribution for k, v in inputs.items() if v.distribution}
    gan_loss: GanLoss = loss  # type: ignore[assignment]  # checked above
    label_first = labels[1] is not None and next(iter(shaped[names[1]].graph.inputs)) == labels[1]
    return _Gan(generator, discriminator, names, optimizers, schedules, GanObjective(gan_loss),
                dict(shaped[names[0]].graph.inputs), distributions, train, device, average,
                labels=labels, num_classes=num_classes if labels[0] is not None else 0,
                label_first=label_first)


def network_schedules(spec: Spec, optimizers: dict[str, torch.optim.Optimizer], epochs: int,
                      steps: dict[str, int]) -> dict[str, Schedule]:
    """One schedule per network's optimizer: `schedule:` names them per network, or gives
    one for all; `steps` is each network's optimizer steps an epoch."""
    section = spec.schedule
    if isinstance(section, dict):
        unknown = [Problem(("schedule", name), f"there is no network {name!r}",
                           f"networks: {', '.join(optimizers)}")
                   for name in section if name not in optimizers]
        if unknown:
            raise SpecError(unknown)
    return {name: make_schedule(section.get(name) if isinstance(section, dict) else section,
                                optimizer, epochs=epochs, steps_per_epoch=steps[name],
                                path=("schedule", name) if isinstance(section, dict)
                                else ("schedule",))
            for name, optimizer in optimizers.items()}


def _epoch(gan: _Gan, data: DataSplits, epoch: int, epochs: int,
           callbacks: Callbacks) -> dict[str, float]:
    """One pass over the real samples; the epoch's mean losses and learning rates."""
    train = gan.train
    count = len(data.train)
    usable = count if count < train.batch_size else count - count % train.batch_size
    callbacks.on_epoch_start(epoch, epochs, max(1, usable // train.batch_size))
    record = {"epoch": float(epoch)}
    gan.generator.train()
    gan.discriminator.train()
    sums: dict[str, list[float]] = {}
    for batch, (inputs, targets) in enumerate(batches(data.train, train.batch_size, gan.order),
                                              1):
        if len(inputs[0]) < train.batch_size <= count:
            break  # a last, smaller batch: batch norm statistics of a few samples are noise
        real = inputs[0].to(gan.device)
        labels = next(iter(targets.values())).to(gan.device) if gan.conditional else None
        values = _discriminator_step(gan, real, labels, epoch, batch)
        gan.critic_steps += 1
        if gan.critic_steps % train.n_critic == 0:
            values["g_loss"] = _generator_step(gan, len(real), epoch, batch)
        for key, value in values.items():
            sums.setdefault(key, []).append(value)
        callbacks.on_batch(batch, values["d_loss"], len(real))
    for key in ("d_loss", "g_loss", "wasserstein_estimate", "gradient_penalty"):
        if key in sums:
            record[key] = sum(sums[key]) / len(sums[key])
    generator, discriminator = gan.names
    record[f"lr/{generator}"] = learning_rate(gan.optimizers[generator])
    record[f"lr/{discriminator}"] = learning_rate(gan.optimizers[discriminator])
    return record


def _discriminator_step(gan: _Gan, real: torch.Tensor, labels: torch.Tensor | None,
                        epoch: int, batch: int) -> dict[str, float]:
    with torch.no_grad():
        inputs, fake_labels = gan.noise(len(real))
        fake = gan.generator(*inputs)
    step = gan.objective.discriminator_loss(
        gan.score, real, fake, () if labels is None else (labels,),
        () if fake_labels is None else (fake_labels,))
    value = finite(step.loss.item(), epoch, batch, "discriminator loss")
    optimizer = gan.optimizers[gan.names[1]]
    optimizer.zero_grad(set_to_none=True)
    step.loss.backward()
    optimizer.step()
    gan.objective.after_discriminator_step(gan.discriminator)
    gan.schedules[gan.names[1]].step_batch()
    values = {"d_loss": value}
    if step.wasserstein is not None:
        values["wasserstein_estimate"] = step.wasserstein
    if step.penalty is not None:
        values["gradient_penalty"] = step.penalty
    return values


def _generator_step(gan: _Gan, size: int, epoch: int, batch: int) -> float:
    # the discriminator's weights take no gradient here: they are only read
    trainable = [p for p in gan.discriminator.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        inputs, labels = gan.noise(size)
        loss = gan.objective.generator_loss(gan.score(gan.generator(*inputs), labels))
        value = finite(loss.item(), epoch, batch, "generator loss")
        optimizer = gan.optimizers[gan.names[0]]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
    if gan.average is not None:
        gan.average.update_parameters(gan.generator)
    gan.schedules[gan.names[0]].step_batch()
    return value


def _samples(gan: _Gan, fixed: list[torch.Tensor]) -> torch.Tensor:
    sampler = gan.sampler
    sampler.eval()
    with torch.inference_mode():
        samples = sampler(*fixed)
    return samples.cpu()


def _numpy(labels: torch.Tensor | None) -> Any:
    return labels.cpu().numpy() if labels is not None else None


def generator_info(spec: Spec, generator: str, data: DataSplits) -> DeploymentInfo:
    """What `dlspec predict --sample` needs to draw samples from the exported generator:
    the latent distributions, the class labels (a conditional GAN: input → number of
    classes, and the class names) and the statistics that turn its outputs back into data."""
    assert spec.networks is not None
    inputs = spec.networks[generator].inputs
    latent = {k: v.distribution or "normal" for k, v in inputs.items() if v.dtype == "float32"}
    labels = {k: data.num_classes for k, v in inputs.items() if v.dtype != "float32"}
    stats = next(iter(data.normalization.values()), None)
    entry: dict[str, Any] = {"latent": latent, "output_normalization": stats,
                             "images": bool(data.image_inputs)}
    if labels:
        entry["labels"] = labels
        entry["class_names"] = data.labels
    return DeploymentInfo(generator=entry)


def _write_run(run_dir: Path, spec: Spec, gan: _Gan, result: FitResult,
               data: DataSplits) -> None:
    save_weights(gan.sampler, run_dir / WEIGHTS)
    save_weights(gan.discriminator, run_dir / DISCRIMINATOR_WEIGHTS)
    write_gan_curves(run_dir, result.history, spec.name)
    generator, discriminator = gan.names
    last = result.history[-1] if result.history else {}
    numbers = ", ".join(f"{k} {last[k]:.4g}" for k in (
        "d_loss", "g_loss", "wasserstein_estimate", "modes_covered", "high_quality_fraction",
        "digit_confidence", "digit_class_min", "digit_class_max") if k in last)
    objective = gan.objective.type + (f", {gan.train.n_critic} discriminator steps per "
                                      "generator step" if gan.train.n_critic > 1 else "")
    lines = [f"# {spec.name}", "", f"Real data: {data.source}; {len(data.train)} training "
             "samples.", "", f"Training: {generator} against {discriminator} ({objective}), "
             f"{len(result.history)} epochs" + (f"; weights of {generator} averaged (EMA "
                                                f"{gan.train.ema})" if gan.average else "")
             + ".", "", f"Last epoch: {numbers}.", "", *stop_lines(result, run_dir),
             ]
    write_run_report(run_dir, lines, [
        ("[model.safetensors](model.safetensors)", f"the trained {generator}"),
        (f"[{DISCRIMINATOR_WEIGHTS}]({DISCRIMINATOR_WEIGHTS})", f"the trained {discriminator}"),
        ("[data.json](data.json)", "latent distribution and data statistics, for sampling"),
        ("[metrics.csv](metrics.csv), [metrics.json](metrics.json)", "per-epoch numbers"),
        ("[curves.png](curves.png)", "losses, metrics and learning rates"),
        ("samples/", "the generator's samples after each epoch (the same noise)"),
        *([("[classifier/](classifier/report.md)", "the LeNet that labels generated digits "
            "(digit_confidence, digit_class_min/max)")]
          if (run_dir / "classifier").is_dir() else [])])
