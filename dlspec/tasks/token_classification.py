"""`task: token_classification`: a class a time step (a tagger), padding ignored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlspec.tasks.registry import register_task
from dlspec.tasks.supervised import SupervisedTask

if TYPE_CHECKING:
    import torch

# the target of a padding position: what cross_entropy's default ignore_index skips
PADDING = -100


@register_task
class TokenClassification(SupervisedTask):
    """(T, C) logits a sequence against (T,) tags; positions tagged -100 are padding."""

    name = "token_classification"
    example = "specs/bilstm_tagger.yaml"
    summary = "a class a time step (tagging); targets -100 are padding, ignored"
    classifies_positions = True
    default_metrics = ("accuracy",)

    def align(self, outputs: torch.Tensor, target: torch.Tensor,
              binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) logits and (B, T) tags flattened to (B·T, C) and (B·T,)."""
        return outputs.reshape(-1, outputs.shape[-1]), target.reshape(-1).long()

    def scored(self, outputs: torch.Tensor,
               target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every real token's logits and tag: padding counts for no metric."""
        logits, tags = self.align(outputs, target, binary=False)
        real = tags != PADDING
        return logits[real], tags[real]

    def suits(self, metric: str) -> bool:
        """Per-token class metrics: accuracy, precision, recall, f1."""
        return metric in ("accuracy", "top5_accuracy", "precision", "recall", "f1")
