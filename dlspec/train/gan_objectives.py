"""The GAN objectives of the `loss` section: the discriminator's and the generator's loss.

Every discriminator outputs raw scores (logits for the probabilistic objectives, unbounded
critic values for the Wasserstein ones); scores of any shape are averaged (a PatchGAN's map
of scores counts as many judgements). With `r = D(x)` on real and `f = D(G(z))` on generated
samples (softplus(t) = log(1 + e^t), so -log σ(t) = softplus(-t)):

| loss | discriminator minimises | generator minimises |
| --- | --- | --- |
| minimax (Goodfellow et al., 2014) | softplus(-r) + softplus(f) | -softplus(f) = log(1 - σ(f)) |
| non_saturating (the paper's practical form) | softplus(-r) + softplus(f) | softplus(-f) |
| least_squares (LSGAN, Mao et al., 2017) | ½(r - 1)² + ½f² | ½(f - 1)² |
| hinge (Lim & Ye, 2017; SAGAN) | relu(1 - r) + relu(1 + f) | -f |
| wasserstein (WGAN, Arjovsky et al., 2017) | f - r, then weights clipped to ±c | -f |
| wasserstein_gp (WGAN-GP, Gulrajani et al., 2017) | f - r + λ (‖∇D(x̂)‖₂ - 1)² | -f |

x̂ is a random point on the segment between a real and a generated sample. For both
Wasserstein objectives, mean(r) - mean(f) is the critic's estimate of the Wasserstein
distance, logged as `wasserstein_estimate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlspec.spec.sections import GanLoss, WassersteinGpLoss, WassersteinLoss

WASSERSTEIN = ("wasserstein", "wasserstein_gp")

_DISCRIMINATOR: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "minimax": lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
    "non_saturating": lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
    "least_squares": lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(),
    "hinge": lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    "wasserstein": lambda r, f: f.mean() - r.mean(),
    "wasserstein_gp": lambda r, f: f.mean() - r.mean(),
}
_GENERATOR: dict[str, Callable[[Tensor], Tensor]] = {
    "minimax": lambda f: -F.softplus(f).mean(),
    "non_saturating": lambda f: F.softplus(-f).mean(),
    "least_squares": lambda f: 0.5 * ((f - 1) ** 2).mean(),
    "hinge": lambda f: -f.mean(),
    "wasserstein": lambda f: -f.mean(),
    "wasserstein_gp": lambda f: -f.mean(),
}
GAN_OBJECTIVES = tuple(_GENERATOR)  # the same names as gan_checks.GAN_OBJECTIVES


@dataclass
class DiscriminatorLoss:
    """One discriminator step's loss and what is logged of it."""

    loss: Tensor
    wasserstein: float | None = None  # mean(r) - mean(f), for the Wasserstein objectives
    penalty: float | None = None  # the gradient penalty before λ (wasserstein_gp)


class GanObjective:
    """The losses of one GAN objective section, and the weight clipping of WGAN.

    Example:
        >>> objective = GanObjective(WassersteinGpLoss(gp_weight=10.0))
        >>> step = objective.discriminator_loss(critic, real, fake.detach())
        >>> step.loss.backward(); critic_optimizer.step()
        >>> objective.generator_loss(critic(fake)).backward()
    """

    def __init__(self, section: GanLoss):
        self.section = section
        self.type = section.type

    @property
    def wasserstein(self) -> bool:
        """Whether the discriminator is a critic whose scores estimate a distance."""
        return self.type in WASSERSTEIN

    def discriminator_loss(self, discriminator: Callable[..., Tensor], real: Tensor,
                           fake: Tensor, real_condition: Sequence[Tensor] = (),
                           fake_condition: Sequence[Tensor] = ()) -> DiscriminatorLoss:
        """The loss of one discriminator step on a real and a generated batch (detached);
        a conditional GAN's discriminator also reads each batch's labels (`*_condition`)."""
        r, f = discriminator(real, *real_condition), discriminator(fake, *fake_condition)
        loss = _DISCRIMINATOR[self.type](r, f)
        estimate = (r.mean() - f.mean()).item() if self.wasserstein else None
        penalty = None
        if isinstance(self.section, WassersteinGpLoss):
            gp = gradient_penalty(discriminator, real, fake, real_condition)
            loss = loss + self.section.gp_weight * gp
            penalty = gp.item()
        return DiscriminatorLoss(loss, estimate, penalty)

    def generator_loss(self, fake_scores: Tensor) -> Tensor:
        """The generator's loss from the discriminator's scores of generated samples."""
        return _GENERATOR[self.type](fake_scores)

    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """WGAN keeps its critic Lipschitz by clipping every weight to ±clip_value."""
        if isinstance(self.section, WassersteinLoss):
            limit = self.section.clip_value
            with torch.no_grad():
                for parameter in discriminator.parameters():
                    parameter.clamp_(-limit, limit)


def gradient_penalty(discriminator: Callable[..., Tensor], real: Tensor, fake: Tensor,
                     condition: Sequence[Tensor] = ()) -> Tensor:
    """E[(‖∇D(x̂)‖₂ - 1)²] over x̂ = εx + (1 - ε)x̃, ε ~ U(0, 1) per sample (WGAN-GP); a
    conditional critic judges x̂ with the real samples' labels (`condition`)."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    epsilon = torch.rand(shape, device=real.device, dtype=real.dtype)  # (B, 1, ...)
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)
    scores = discriminator(mixed, *condition)
    # create_graph: the penalty is itself differentiated in the critic's backward pass
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.reshape(grad.shape[0], -1).norm(2, dim=1)  # (B,)
    return ((norms - 1) ** 2).mean()
