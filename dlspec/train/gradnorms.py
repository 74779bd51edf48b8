"""Gradient norms per layer, logged each epoch with `train.log_grad_norms`."""

from __future__ import annotations

import torch


class GradientNorms:
    """Mean gradient L2 norm per top-level layer over an epoch (before clipping), so that
    vanishing or exploding gradients show in metrics.csv as `grad_norm/<layer>`."""

    def __init__(self, model: torch.nn.Module):
        self.groups: dict[str, list[torch.nn.Parameter]] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                self.groups.setdefault(_layer_group(name), []).append(parameter)
        self.sums = dict.fromkeys(self.groups, 0.0)
        self.count = 0

    def measure(self) -> None:
        """Add this step's norms (call after backward)."""
        for group, parameters in self.groups.items():
            grads = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
            if grads:
                self.sums[group] += torch.stack(grads).norm().item()
        self.count += 1

    def means(self) -> dict[str, float]:
        """The epoch's mean norm per group."""
        return {f"grad_norm/{g}": total / max(self.count, 1) for g, total in self.sums.items()}


def _layer_group(parameter: str) -> str:
    """The top-level layer a parameter belongs to; repeated copies apart (`fc.0`, `fc.1`)."""
    parts = parameter.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
