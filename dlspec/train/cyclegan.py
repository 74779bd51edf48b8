"""`task: cyclegan`: two generators and two discriminators over two unpaired image domains.

Zhu et al. (2017), as their reference implementation trains it. Each batch pairs a batch of
domain-A images with an independently drawn batch of domain-B images. The generators take
one step together on

    adversarial(D_b(G_ab(a))) + adversarial(D_a(G_ba(b)))               fool both judges
    + λ (|G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b|)                     close both cycles
    + λ · identity_weight (|G_ab(b) - b| + |G_ba(a) - a|)               leave the target alone

(|·| the mean absolute error, λ = `cycle_weight`), then each discriminator takes one step on
real images of its domain against generated ones drawn from an image pool: a history of
`pool_size` past generated images, of which each query returns a random half in place of the
new ones (Shrivastava et al., 2017), so that a discriminator does not chase the generators'
latest trick. Adversarial terms are the `adversarial` GAN objective's (see gan_objectives);
for least squares the generators minimise (D(G(x)) - 1)², as in the paper and the reference
code (task gan's least-squares generator loss is half that).

Measured every epoch on the validation images: `cycle_error_a` / `cycle_error_b`, the mean
absolute error of a round trip in pixel units ([0, 1] images), and `translated_as_b` /
`translated_as_a`, the share of translated images that a domain classifier (trained first,
on the real training images of both domains) takes for the target domain. Library code: it
never prints.

The run folder: one `<network>.safetensors` per network (`dlspec export` exports both
generators), metrics.csv/json, curves.png, samples/a_to_b_NNN.png and b_to_a_NNN.png (rows:
real, translated, translated back; the same validation images every epoch), the domain
classifier's run in domain_classifier/, the checkpoint files, spec.resolved.yaml, data.json
and report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlspec.compile import compile_graph
from dlspec.data import DataSplits, TensorSet, load_data
from dlspec.errors import Problem, SpecError
from dlspec.export.metadata import DeploymentInfo
from dlspec.graph import ShapedGraph
from dlspec.spec.model import Spec
from dlspec.spec.sections import CycleGanLoss, TrainConfig
from dlspec.train.checkpoint import save_weights
from dlspec.train.domain_judge import DomainJudge
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
from dlspec.train.gan import network_schedules
from dlspec.train.gan_checks import (
    CYCLEGAN_ROLES,
    UNSUPPORTED_BY_CYCLEGAN,
    check_cyclegan,
    check_range,
    check_settings,
    cyclegan_domains,
)
from dlspec.train.gan_objectives import GanObjective
from dlspec.train.gan_outputs import GRID, denormalize, image_grid, write_gan_curves
from dlspec.train.optim import make_optimizers
from dlspec.train.schedules import Schedule
from dlspec.train.supervised import deployment_info

GENERATORS = CYCLEGAN_ROLES[:2]
DISCRIMINATORS = CYCLEGAN_ROLES[2:]
# least squares: the paper's generator loss (f - 1)² is twice task gan's ½(f - 1)²
_GENERATOR_SCALE = {"least_squares": 2.0}


class ImagePool:
    """The last `size` generated images; a query swaps about half of a batch for them."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        """The images to show a discriminator in place of `images` (detached)."""
        if self.size == 0:
            return images.detach()
        shown = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                shown.append(image)
            elif torch.rand(()).item() < 0.5:  # torch's generator: checkpointed, resumable
                index = int(torch.randint(self.size, ()).item())
                shown.append(self.images[index])
                self.images[index] = image.clone()
            else:
                shown.append(image)
        return torch.stack(shown)

    def state_dict(self) -> Tensor | None:
        """The pooled images as one tensor (on the CPU), for the checkpoint."""
        return torch.stack(self.images).cpu() if self.images else None

    def load_state_dict(self, state: Tensor | None, device: torch.device) -> None:
        """Restore what `state_dict` returned."""
        self.images = list(state.to(device).unbind()) if state is not None else []


@dataclass
class _CycleGan:
    """The four networks, their optimisers and schedules, and what a step needs."""

    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, Schedule]
    loss: CycleGanLoss
    objective: GanObjective
    train: TrainConfig
    device: torch.device
    pools: dict[str, ImagePool]  # generated images per discriminator
    order: torch.Generator = field(default_factory=torch.Generator)

    def __getitem__(self, name: str) -> nn.Module:
        return self.networks[name]

    @property
    def all(self) -> nn.Module:
        """All four networks as one module: the checkpoint's weights, `<network>.<layer>`."""
        return nn.ModuleDict(self.networks)

    @property
    def generators(self) -> nn.ModuleDict:
        """Both generators, by name: what is exported."""
        return nn.ModuleDict({name: self.networks[name] for name in GENERATORS})


def start_cyclegan(run: Run) -> CycleGanSession:
    """Check a `task: cyclegan` spec against its two image domains, build the four
    networks (and first the domain classifier that judges translations): the session.

    Example:
        >>> spec = dlspec.load("specs/cyclegan.yaml", variant="digits")
        >>> result = dlspec.train_spec(spec)  # the engine runs this session
        >>> result.fit.history[-1]["translated_as_b"]
        0.99...
    """
    spec, shaped, train = run.spec, run.shaped, run.train
    check_cyclegan(spec, shaped)
    check_settings(spec, UNSUPPORTED_BY_CYCLEGAN)
    data = _data(spec, shaped, run.base_dir)
    (domain_a,) = data.train.tensors().values()
    check_range(spec, shaped["generator_ba"], domain_a, images=True)
    check_range(spec, shaped["generator_ab"], data.train.target, images=True)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    judge = DomainJudge.prepare(run.run_dir / "domain_classifier", data, train.seed)
    gan = _setup(spec, shaped, run.epochs, len(data.train), run.device)
    return CycleGanSession(spec, gan, data, run.run_dir, judge)


class CycleGanSession(Session):
    """A CycleGAN's run: the four networks, both domains, the round-trip pictures."""

    def __init__(self, spec: Spec, gan: _CycleGan, data: DataSplits, run_dir: Path,
                 judge: DomainJudge):
        self.spec, self.gan, self.dataset, self.judge = spec, gan, data, judge
        self.saved, self.optimizers, self.schedules = gan.all, gan.optimizers, gan.schedules
        self.samples = len(data.train)
        self.pictures = _RoundTrips(run_dir / "samples", data)

    def train_epoch(self, epoch: int, epochs: int, order: torch.Generator,
                    callbacks: Callbacks) -> dict[str, float]:
        """Generator and discriminator steps over domain A's images, each with B's."""
        self.gan.order = order
        return _epoch(self.gan, self.dataset, epoch, epochs, callbacks)

    def measure(self, epoch: int) -> dict[str, float]:
        """Round trips of the validation images, measured and drawn."""
        assert self.dataset.val is not None  # _data: there is a validation split
        record = _measure(self.gan, self.dataset.val, self.dataset, self.judge)
        self.pictures.write(epoch, self.gan)
        return record

    def test(self) -> dict[str, float]:
        """Round trips of the test images."""
        assert self.dataset.test is not None  # _data: there is a test split
        return _measure(self.gan, self.dataset.test, self.dataset, self.judge)

    def extra_state(self) -> dict[str, Any]:
        """The image pools the discriminators draw generated images from."""
        return {"pools": {k: v.state_dict() for k, v in self.gan.pools.items()}}

    def restore_extra(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""
        for name, pool in self.gan.pools.items():
            pool.load_state_dict(state["pools"][name], self.gan.device)

    def info(self) -> DeploymentInfo:
        """Each generator's source and target domain statistics."""
        return translation_info(self.dataset)

    def trained(self) -> nn.Module:
        """Both generators, by name: what `dlspec build` exports."""
        return self.gan.generators.cpu()

    def data(self) -> DataSplits:
        """Both domains."""
        return self.dataset

    def write(self, run_dir: Path, result: FitResult, test: dict[str, float] | None) -> None:
        """Each network's weights, the curves and report.md."""
        _write_run(run_dir, self.spec, self.gan, result, test or {}, self.dataset, self.judge)


def _data(spec: Spec, shaped: dict[str, ShapedGraph], base: Path) -> DataSplits:
    if spec.data is None:
        raise SpecError(Problem((), "training needs a `data:` section: images of both "
                                "domains", "e.g. data: {dataset: digits_pair}"))
    data = load_data(spec.data, spec.task, dict(shaped["generator_ab"].graph.inputs),
                     seed=spec.train.seed, base_dir=base)
    domain_b = cyclegan_domains(shaped)[1]
    target = data.train.target
    if not target.is_floating_point() or tuple(target.shape[1:]) != domain_b:
        raise SpecError(Problem(("data",), f"task cyclegan reads domain A from the inputs and "
                                f"domain B ({'×'.join(map(str, domain_b))} images) from the "
                                f"targets, but {data.source} has targets of shape "
                                f"{tuple(target.shape[1:])}",
                                "use two-domain data, e.g. dataset: digits_pair"))
    for split in (data.val, data.test):
        if split is None or len(split) == 0:
            raise SpecError(Problem(("data",), "task cyclegan measures its round trips on "
                                    "validation images and needs validation and test splits",
                                    "set data.split, e.g. split: [0.8, 0.1, 0.1]"))
    return data


def _setup(spec: Spec, shaped: dict[str, ShapedGraph], epochs: int, samples: int,
           device: torch.device) -> _CycleGan:
    train = spec.train
    loss = spec.loss if isinstance(spec.loss, CycleGanLoss) else CycleGanLoss()
    seed_weights(train)
    networks: dict[str, nn.Module] = {name: compile_graph(shaped[name]).to(device)
                                      for name in CYCLEGAN_ROLES}
    optimizers = make_optimizers(spec.optimizer, networks)
    steps = max(1, samples // train.batch_size)
    schedules = network_schedules(spec, optimizers, epochs, dict.fromkeys(networks, steps))
    pools = {name: ImagePool(loss.pool_size) for name in DISCRIMINATORS}
    return _CycleGan(networks, optimizers, schedules, loss, GanObjective(loss.adversarial),
                     train, device, pools)


def _epoch(gan: _CycleGan, data: DataSplits, epoch: int, epochs: int,
           callbacks: Callbacks) -> dict[str, float]:
    """One pass over domain A's training images, each batch with a random batch of B."""
    size = gan.train.batch_size
    (domain_a,) = data.train.tensors().values()
    domain_b = data.train.target
    count = len(domain_a)
    usable = count if count < size else count - count % size
    callbacks.on_epoch_start(epoch, epochs, max(1, usable // size))
    record = {"epoch": float(epoch)}
    for network in gan.networks.values():
        network.train()
    order_a = torch.randperm(count, generator=gan.order)
    order_b = torch.randperm(len(domain_b), generator=gan.order)
    sums: dict[str, float] = {}
    steps = 0
    for batch, start in enumerate(range(0, usable, size), 1):
        chosen = torch.arange(start, min(start + size, usable))
        real_a = domain_a[order_a[chosen]].to(gan.device)
        real_b = domain_b[order_b[chosen % len(domain_b)]].to(gan.device)
        values = _step(gan, real_a, real_b, epoch, batch)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        steps += 1
        callbacks.on_batch(batch, values["g_loss"], len(real_a))
    record.update({key: value / max(steps, 1) for key, value in sums.items()})
    for name, optimizer in gan.optimizers.items():
        record[f"lr/{name}"] = learning_rate(optimizer)
    return record


def _step(gan: _CycleGan, real_a: Tensor, real_b: Tensor, epoch: int,
          batch: int) -> dict[str, float]:
    """One generator step (both together), then one step of each discriminator."""
    fake_b, fake_a, values = _generator_step(gan, real_a, real_b, epoch, batch)
    for name, real, fake in (("discriminator_a", real_a, fake_a),
                             ("discriminator_b", real_b, fake_b)):
        shown = gan.pools[name].query(fake)
        step = gan.objective.discriminator_loss(gan[name], real, shown)
        values[f"d_loss_{name[-1]}"] = finite(step.loss.item(), epoch, batch, f"{name} loss")
        optimizer = gan.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        step.loss.backward()
        optimizer.step()
        gan.objective.after_discriminator_step(gan[name])
        gan.schedules[name].step_batch()
    return values


def _generator_step(gan: _CycleGan, real_a: Tensor, real_b: Tensor, epoch: int,
                    batch: int) -> tuple[Tensor, Tensor, dict[str, float]]:
    ab, ba = gan["generator_ab"], gan["generator_ba"]
    judges = [p for name in DISCRIMINATORS for p in gan[name].parameters() if p.requires_grad]
    for parameter in judges:  # only read here: they take no gradient
        parameter.requires_grad_(False)
    try:
        fake_b, fake_a = ab(real_a), ba(real_b)
        scale = _GENERATOR_SCALE.get(gan.objective.type, 1.0)
        adversarial = scale * (gan.objective.generator_loss(gan["discriminator_b"](fake_b))
                               + gan.objective.generator_loss(gan["discriminator_a"](fake_a)))
        weight = gan.loss.cycle_weight
        cycle = weight * (F.l1_loss(ba(fake_b), real_a) + F.l1_loss(ab(fake_a), real_b))
        identity = (weight * gan.loss.identity_weight
                    * (F.l1_loss(ab(real_b), real_b) + F.l1_loss(ba(real_a), real_a))
                    if gan.loss.identity_weight > 0 else torch.zeros((), device=gan.device))
        loss = adversarial + cycle + identity
        value = finite(loss.item(), epoch, batch, "generator loss")
        for name in GENERATORS:
            gan.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in GENERATORS:
            gan.optimizers[name].step()
            gan.schedules[name].step_batch()
    finally:
        for parameter in judges:
            parameter.requires_grad_(True)
    values = {"g_loss": value, "g_adversarial": adversarial.item(), "cycle_loss": cycle.item(),
              "identity_loss": identity.item()}
    return fake_b.detach(), fake_a.detach(), values


def _measure(gan: _CycleGan, images: TensorSet, data: DataSplits,
             judge: DomainJudge) -> dict[str, float]:
    """Round-trip errors (pixel units) and translated images' domains, on `images`."""
    (domain_a,) = images.tensors().values()
    trips = {"a": _round_trip(gan, domain_a, "generator_ab", "generator_ba"),
             "b": _round_trip(gan, images.target, "generator_ba", "generator_ab")}
    numbers = {}
    for domain, (real, translated, back) in trips.items():
        stats = domain_statistics(data, domain)
        pixels = _pixels(real, stats), _pixels(back, stats)
        numbers[f"cycle_error_{domain}"] = float(np.abs(pixels[0] - pixels[1]).mean())
        target = "b" if domain == "a" else "a"
        numbers[f"translated_as_{target}"] = judge.share_of(translated, target)
    return numbers


def translation_info(data: DataSplits) -> DeploymentInfo:
    """What the exported generators need: each reads its source domain's statistics and
    makes images in its target domain's (undone by `dlspec predict`)."""
    info = deployment_info(data)
    a, b = domain_statistics(data, "a"), domain_statistics(data, "b")
    info.translations = {"generator_ab": {"input": a, "output": b},
                         "generator_ba": {"input": b, "output": a}}
    return info


def domain_statistics(data: DataSplits, domain: str) -> dict[str, list[float]] | None:
    """The normalisation of domain `a` (the inputs) or `b` (the targets)."""
    if domain == "a":
        return next(iter(data.normalization.values()), None)
    return data.target_normalization


def _round_trip(gan: _CycleGan, images: Tensor, there: str, back: str
                ) -> tuple[Tensor, Tensor, Tensor]:
    forth, home = gan[there], gan[back]
    forth.eval()
    home.eval()
    translated, returned = [], []
    with torch.inference_mode():
        for part in images.split(64):
            moved = forth(part.to(gan.device))
            translated.append(moved.cpu())
            returned.append(home(moved).cpu())
    return images, torch.cat(translated), torch.cat(returned)


def _pixels(images: Tensor, stats: dict[str, list[float]] | None) -> np.ndarray:
    # the data's normalisation undone, unclipped: errors in the units of [0, 1] images
    values = images.float().numpy()
    if stats is None:
        return values
    mean = np.asarray(stats["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(stats["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return values * std + mean


class _RoundTrips:
    """samples/a_to_b_NNN.png and b_to_a_NNN.png: real, translated and returned rows of the
    same GRID validation images every epoch."""

    def __init__(self, folder: Path, data: DataSplits):
        assert data.val is not None
        self.folder = folder
        (domain_a,) = data.val.tensors().values()
        self.images = {"a": domain_a[:GRID], "b": data.val.target[:GRID]}
        self.data = data

    def write(self, epoch: int, gan: _CycleGan) -> None:
        """Both pictures of `epoch`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for source, there, back, name in (("a", "generator_ab", "generator_ba", "a_to_b"),
                                          ("b", "generator_ba", "generator_ab", "b_to_a")):
            real, translated, returned = _round_trip(gan, self.images[source], there, back)
            target = "b" if source == "a" else "a"
            rows = [denormalize(images.float().numpy(), domain_statistics(self.data, domain))
                    for images, domain in ((real, source), (translated, target),
                                           (returned, source))]
            picture = image_grid(np.concatenate(_same_channels(rows)))
            picture.save(self.folder / f"{name}_{epoch:03d}.png")


def _same_channels(rows: list[np.ndarray]) -> list[np.ndarray]:
    # a grey domain beside a colour one: the grey rows drawn in colour
    channels = max(row.shape[1] for row in rows)
    return [np.repeat(row, channels, axis=1) if row.shape[1] != channels else row
            for row in rows]


def _write_run(run_dir: Path, spec: Spec, gan: _CycleGan, result: FitResult,
               test: dict[str, float], data: DataSplits, judge: DomainJudge) -> None:
    for name, network in gan.networks.items():
        save_weights(network, run_dir / f"{name}.safetensors")
    write_gan_curves(run_dir, result.history, spec.name)
    last = result.history[-1] if result.history else {}
    numbers = ", ".join(f"{k} {last[k]:.4g}" for k in (
        "g_loss", "cycle_loss", "d_loss_a", "d_loss_b") if k in last)
    tested = ", ".join(f"{k} {v:.4g}" for k, v in test.items())
    loss = gan.loss
    lines = [f"# {spec.name}", "", f"Domains: {data.source}; {len(data.train)} training "
             "images each.", "", f"Training: generator_ab and generator_ba against "
             f"discriminator_b and discriminator_a ({loss.adversarial.type}; cycle weight "
             f"{loss.cycle_weight:g}, identity weight {loss.identity_weight:g}, image pool "
             f"{loss.pool_size}), {len(result.history)} epochs.", "",
             f"Last epoch: {numbers}.", "", *stop_lines(result, run_dir),
             f"Test images: {tested} (cycle errors in pixel units of [0, 1] images; "
             "translated_as_*: the share of translated images the domain classifier takes "
             f"for the target domain; it tells real test images apart at "
             f"{judge.test_accuracy:.1%}).", "",
             ]
    write_run_report(run_dir, lines, [
        *((f"[{name}.safetensors]({name}.safetensors)", f"the trained {name}")
          for name in CYCLEGAN_ROLES),
        ("[data.json](data.json)", "the images' normalisation, for deployment"),
        ("[metrics.csv](metrics.csv), [metrics.json](metrics.json)",
         "per-epoch numbers and the test numbers"),
        ("[curves.png](curves.png)", "losses, round-trip errors, domains and learning rates"),
        ("samples/", "after each epoch: real, translated and returned validation images"),
        ("[domain_classifier/](domain_classifier/)", "the classifier behind "
         "translated_as_a/b")])
