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


class TiedLinear(nn.Module):
    """A linear layer whose weight belongs to another layer (`tie:`, an LM head reading its
    token embedding's table): forward receives that weight, so state_dict stores it once."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _LastOrSequence(nn.RNNBase):
    """Makes a batch-first recurrent layer return one tensor: the output sequence
    (B, T, H * dirs) if `return_sequence`; the whole final state if `return_state`,
    batch-first as (B, layers * dirs, H) — an LSTM's h and c stacked, (B, 2, layers * dirs, H);
    else the last layer's final hidden state (B, H * dirs), read from h_n (forward then
    backward direction) so that it exports with dynamic sequence lengths. A second input is
    the initial state, in the layout `return_state` gives. Mixed in before nn.RNN/LSTM/GRU,
    whose state_dict keys (weight_ih_l0 ...) stay PyTorch's own."""

    def __init__(self, *args, return_sequence: bool, return_state: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.return_sequence, self.return_state = return_sequence, return_state

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                initial: torch.Tensor | None = None) -> torch.Tensor:
        if initial is None:
            output, state = super().forward(x)
        elif isinstance(self, nn.LSTM):  # (B, 2, L*D, H) → h0, c0 as (L*D, B, H)
            h0 = initial[:, 0].transpose(0, 1).contiguous()
            c0 = initial[:, 1].transpose(0, 1).contiguous()
            output, state = super().forward(x, (h0, c0))
        else:
            output, state = super().forward(x, initial.transpose(0, 1).contiguous())
        h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        if self.return_sequence:
            return output
        if self.return_state:
            if isinstance(state, tuple):
                return torch.stack(state, dim=0).permute(2, 0, 1, 3)
            return state.transpose(0, 1)
        if self.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]

    def extra_repr(self) -> str:
        state = ", return_state=True" if self.return_state else ""
        return f"{super().extra_repr()}, return_sequence={self.return_sequence}{state}"


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


# --- parameter, drop path, threshold (and the channels-first layer norm) ---------------------

class LearnedTensor(nn.Module):
    """A learnable tensor `weight` of per-sample `shape`, given to every sample of the input.

    The input is read only for its batch size: the output (B, *shape) is `weight` expanded
    over the batch axis, a view without a copy, so every sample's gradient adds up in
    `weight`. `init` is a constant, or 'zeros', 'ones', 'normal' (N(0, std²)) or
    'trunc_normal' (N(0, std²) redrawn beyond ±2 std).
    """

    def __init__(self, shape: tuple[int, ...], init: float | str = "trunc_normal",
                 std: float = 0.02):
        super().__init__()
        self.shape, self.init, self.std = tuple(shape), init, std
        self.weight = nn.Parameter(torch.empty(self.shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill `weight` as `init` says."""
        if self.weight.is_meta:  # shape inference: nothing to fill (and normal_ on meta
            return  # would import torch._dynamo)
        with torch.no_grad():
            if self.init == "normal":
                nn.init.normal_(self.weight, std=self.std)
            elif self.init == "trunc_normal":  # bounds in units of the weight, not of std
                nn.init.trunc_normal_(self.weight, std=self.std, a=-2 * self.std,
                                      b=2 * self.std)
            else:
                value = {"zeros": 0.0, "ones": 1.0}.get(str(self.init), self.init)
                nn.init.constant_(self.weight, float(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a view of a parameter requires grad even under no_grad, where every other layer's
        # output does not (and `.numpy()` would refuse it): detach it there, still a view
        weight = self.weight if torch.is_grad_enabled() else self.weight.detach()
        return weight.expand(x.shape[0], *self.shape)  # (B, *shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, init={self.init!r}"


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's DropPath, torchvision's StochasticDepth "row").

    In training each sample is zeroed with probability `p` and the others are scaled by
    1 / (1 - p), so the expected output is the input; in eval (and so in an export) it is the
    identity. Placed on a residual branch, it drops the whole branch for that sample.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        # one draw per sample, broadcast over the sample's axes: (B, 1, ..., 1)
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * (mask / keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Step(nn.Module):
    """The Heaviside step of a perceptron: 1 where x > 0, 0 where x < 0, `at_zero` at 0.

    Computed from torch.sign so that autograd's graph stays connected: the gradient is 0
    (as the step's is, wherever it exists), not missing, and backward() still runs.
    """

    def __init__(self, at_zero: float = 0.0):
        super().__init__()
        self.at_zero = at_zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = torch.sign(x)
        step = (sign + 1) * 0.5  # 1 above 0, 0 below, 0.5 at 0
        return step + (sign == 0).to(x.dtype) * (self.at_zero - 0.5)

    def extra_repr(self) -> str:
        return f"at_zero={self.at_zero}"


class ChannelsFirstLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the channel axis (1) of a (B, C, ...) map, at every position:
    ConvNeXt's LayerNorm2d. The state_dict is nn.LayerNorm(C)'s (`weight`, `bias`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, *S) → (B, *S, C): layer_norm normalizes the trailing axis, then back
        x = nn.functional.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight,
                                     self.bias, self.eps)
        return x.movedim(-1, 1)


# --- attention masks


class AttentionMasks:
    """Mixed into the masked attention modules: masks built from the runtime lengths (True
    blocks a key), so an exported model with a dynamic sequence axis masks any length: no
    table sized for the traced one.

    A query is never left with every key blocked (a sample of padding only, or left padding
    under a causal mask): softmax over nothing is NaN, which would spread through the next
    layer's keys. Such a query attends to every key instead; its output is padding's, which
    nothing unblocked reads. Every other query sees exactly what PyTorch's masks give it."""

    @staticmethod
    def masks(query: torch.Tensor, key: torch.Tensor, causal: bool, ids: torch.Tensor | None,
              pad_id: int | None, heads: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(attn_mask, key_padding_mask) for (B, Tq, E) queries over (B, Tk, E) keys whose
        token ids `ids` (B, Tk) mark padding with `pad_id`: (Tq, Tk) causal, (B, Tk) padding,
        or both merged into one (B * heads, Tq, Tk) mask."""
        if not query.is_floating_point():
            raise TypeError(f"attention reads float features, not "
                            f"{str(query.dtype).removeprefix('torch.')}: token ids go through "
                            "an `embedding` first")
        blocked = None
        if causal:  # query position i sees key positions 0..i
            blocked = torch.ones(query.shape[1], key.shape[1], dtype=torch.bool,
                                 device=query.device).triu(1)
        if ids is None or pad_id is None:
            return blocked, None
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise TypeError(f"the pad ids input is {str(ids.dtype).removeprefix('torch.')}, "
                            f"not token ids: pad_id {pad_id} masks the positions of an int "
                            "token input (e.g. from: [embedded, tokens])")
        padding = ids == pad_id  # (B, Tk)
        if blocked is None:
            return None, padding & ~padding.all(dim=1, keepdim=True)
        rows = blocked.unsqueeze(0) | padding.unsqueeze(1)  # (B, Tq, Tk)
        rows = rows & ~rows.all(dim=2, keepdim=True)
        batch, length, keys = rows.shape
        return rows.unsqueeze(1).expand(batch, heads, length, keys).reshape(
            batch * heads, length, keys), None


class MaskedMultiheadAttention(AttentionMasks, nn.MultiheadAttention):
    """nn.MultiheadAttention returning only the attention output, with a causal mask and/or
    a key padding mask read from the keys' token ids (the last input when `pad_id` is set).

    Inputs: (x), (x, ids), (query, key, value) or (query, key, value, ids)."""

    def __init__(self, *args, causal: bool = False, pad_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal, self.pad_id = causal, pad_id

    def forward(self, query: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ids = rest[-1] if self.pad_id is not None else None
        rest = rest[:-1] if self.pad_id is not None else rest
        key = rest[0] if rest else query
        value = rest[1] if len(rest) > 1 else key
        mask, padding = self.masks(query, key, self.causal, ids, self.pad_id,
                                             self.num_heads)
        # no is_causal hint: with add_bias_kv PyTorch would then block the appended bias key
        return super().forward(query, key, value, key_padding_mask=padding, need_weights=False,
                               attn_mask=mask)[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, causal={self.causal}, pad_id={self.pad_id}"


class MaskedTransformerEncoder(AttentionMasks, nn.TransformerEncoder):
    """nn.TransformerEncoder with a causal mask and/or a key padding mask read from the
    token ids (its second input, when `pad_id` is set). The state_dict is
    nn.TransformerEncoder's."""

    def __init__(self, *args, causal: bool = False, pad_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal, self.pad_id = causal, pad_id

    def forward(self, src: torch.Tensor,  # type: ignore[override]
                ids: torch.Tensor | None = None) -> torch.Tensor:
        heads = self.layers[0].self_attn.num_heads
        mask, padding = self.masks(src, src, self.causal, ids, self.pad_id, heads)
        return super().forward(src, mask=mask, src_key_padding_mask=padding,
                               is_causal=self.causal and ids is None)

    def extra_repr(self) -> str:
        return f"causal={self.causal}, pad_id={self.pad_id}"


class MaskedTransformerDecoder(AttentionMasks, nn.TransformerDecoder):
    """nn.TransformerDecoder with a causal mask on the target's self-attention and/or key
    padding masks read from token ids: with `pad_id`, the target's ids follow (target,
    memory), then optionally the memory's. The state_dict is nn.TransformerDecoder's."""

    def __init__(self, *args, causal: bool = False, pad_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal, self.pad_id = causal, pad_id

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor,  # type: ignore[override]
                tgt_ids: torch.Tensor | None = None,
                memory_ids: torch.Tensor | None = None) -> torch.Tensor:
        heads = self.layers[0].self_attn.num_heads
        mask, padding = self.masks(tgt, tgt, self.causal, tgt_ids, self.pad_id, heads)
        _, memory_padding = self.masks(memory, memory, False, memory_ids,
                                                 self.pad_id, heads)
        return super().forward(tgt, memory, tgt_mask=mask, tgt_key_padding_mask=padding,
                               memory_key_padding_mask=memory_padding,
                               tgt_is_causal=self.causal and tgt_ids is None)

    def extra_repr(self) -> str:
        return f"causal={self.causal}, pad_id={self.pad_id}"
