"""dlspec's own nn.Module classes, for what PyTorch has no module for.

`dlspec code` copies the source of the classes a model uses into the generated
file, so every class here must be self-contained: it may use only `torch`,
`nn` and the standard library, and no other class from this file unless that
class is used with it.
"""

from __future__ import annotations

import torch
from torch import nn


class Reshape(nn.Module):
    """Reshape each sample to `shape`; the batch axis is kept."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Permute(nn.Module):
    """Permute axes; `dims` counts the batch axis as 0 and keeps it first."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Slice(nn.Module):
    """`x[:, ..., start:end:step]` along axis `dim` (the batch axis is 0), Python's rules."""

    def __init__(self, dim: int, start: int | None, end: int | None, step: int = 1):
        super().__init__()
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[(slice(None),) * self.dim + (slice(self.start, self.end, self.step),)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, end={self.end}, step={self.step}"


class _LastOrSequence(nn.RNNBase):
    """Makes a batch-first recurrent layer return one tensor: the output sequence
    (B, T, H * dirs) if `return_sequence`, else the last layer's final hidden state
    (B, H * dirs), read from h_n (forward then backward direction) so that it exports
    with dynamic sequence lengths. Mixed in before nn.RNN/LSTM/GRU, whose state_dict
    keys (weight_ih_l0 ...) stay PyTorch's own."""

    def __init__(self, *args, return_sequence: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.return_sequence = return_sequence

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        output, state = super().forward(x)
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        if self.return_sequence:
            return output
        if self.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, return_sequence={self.return_sequence}"


class RNN(_LastOrSequence, nn.RNN):  # type: ignore[misc]  # forward returns one tensor
    """nn.RNN returning one tensor (see _LastOrSequence)."""


class LSTM(_LastOrSequence, nn.LSTM):  # type: ignore[misc]  # forward returns one tensor
    """nn.LSTM returning one tensor (see _LastOrSequence)."""


class GRU(_LastOrSequence, nn.GRU):  # type: ignore[misc]  # forward returns one tensor
    """nn.GRU returning one tensor (see _LastOrSequence)."""


class MultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention returning only the attention output (no weights).

    With one input it is self-attention; with (query, key, value) cross-attention."""

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,  # type: ignore[override]
                value: torch.Tensor | None = None) -> torch.Tensor:
        key = query if key is None else key
        value = key if value is None else value
        return super().forward(query, key, value, need_weights=False)[0]


class PositionalEncoding(nn.Module):
    """Adds a position encoding to the first T positions of a (B, T, d_model) input.

    Sinusoidal: a fixed, non-persistent buffer (the state_dict stays empty).
    Learned: a parameter `weight` of shape (1, max_len, d_model)."""

    pe: torch.Tensor

    def __init__(self, d_model: int, max_len: int = 5000, learned: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.d_model, self.max_len, self.learned = d_model, max_len, learned
        self.dropout = nn.Dropout(dropout)
        if learned:
            self.weight = nn.Parameter(torch.empty(1, max_len, d_model))
            nn.init.normal_(self.weight, std=0.02)
        else:
            position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
            div = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
            pe = torch.zeros(1, max_len, d_model)
            pe[0, :, 0::2] = torch.sin(position * div)
            pe[0, :, 1::2] = torch.cos(position * div[: d_model // 2])
            self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoding = self.weight if self.learned else self.pe
        return self.dropout(x + encoding[:, : x.shape[1]])

    def extra_repr(self) -> str:
        kind = "learned" if self.learned else "sinusoidal"
        return f"{self.d_model}, max_len={self.max_len}, {kind}"
