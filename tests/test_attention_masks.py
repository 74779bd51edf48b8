"""Attention masks: `causal: true` and `pad_id` on multihead_attention, transformer_encoder and
transformer_decoder. They give what hand-written PyTorch with the same weights and masks
gives, follow the runtime length (also in ONNX), never produce NaN, and wrong uses are
located errors with hints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import dlspec
from dlspec.codegen import generate_code
from dlspec.compile import compile_graph

HEAD = """\
dlspec: 1
name: masks
inputs:
  tokens: {shape: [6], dtype: int64}
network:
  - {name: embed, embedding: {num_embeddings: 20, embedding_dim: 8}, from: tokens}
"""


def _compiled(layers: str, inputs: str = "") -> tuple[torch.nn.Module, dlspec.Spec]:
    spec = dlspec.loads(HEAD.replace("network:", inputs + "network:") + layers)
    torch.manual_seed(0)
    return compile_graph(next(iter(dlspec.shapes(spec).values()))).eval(), spec


def _tokens() -> torch.Tensor:
    """Right-padded token ids (pad 0): no query is left with nothing to attend to."""
    ids = torch.randint(1, 20, (3, 6), generator=torch.Generator().manual_seed(1))
    ids[0, 4:] = 0
    ids[1, 2:] = 0
    return ids


def _modes() -> list[object]:
    # training-style autograd, and inference mode, where PyTorch takes its fused fast path
    return [torch.enable_grad(), torch.inference_mode()]


def test_encoder_equals_pytorch_with_a_causal_and_a_padding_mask() -> None:
    model, _ = _compiled("  - {name: enc, transformer_encoder: {num_layers: 2, nhead: 2, "
                         "dim_feedforward: 16, dropout: 0.0, causal: true, pad_id: 0}, "
                         "from: [embed, tokens]}\n")
    encoder = model.get_submodule("enc")
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    reference = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    reference.load_state_dict(encoder.state_dict())  # the same keys: PyTorch's own
    ids = _tokens()
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # as generate_square_subsequent_mask
    for mode in _modes():
        with mode:  # type: ignore[attr-defined]
            x = model.get_submodule("embed")(ids)
            expected = reference(x, mask=causal, src_key_padding_mask=ids == 0, is_causal=True)
            assert torch.allclose(model(ids), expected, atol=1e-6)


def test_attention_and_decoder_equal_pytorch_with_their_masks() -> None:
    model, _ = _compiled(
        "  - {name: att, multihead_attention: {num_heads: 2, causal: true, pad_id: 0}, "
        "from: [embed, tokens]}\n"
        "  - {name: dec, transformer_decoder: {num_layers: 1, nhead: 2, dim_feedforward: 16, "
        "dropout: 0.0, causal: true, pad_id: 0}, from: [att, source, tokens, source_ids]}\n",
        inputs="  source: {shape: [5, 8]}\n  source_ids: {shape: [5], dtype: int64}\n")
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    attention.load_state_dict(model.get_submodule("att").state_dict())
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    decoder = nn.TransformerDecoder(layer, 1).eval()
    decoder.load_state_dict(model.get_submodule("dec").state_dict())
    ids, source = _tokens(), torch.randn(3, 5, 8)
    source_ids = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0]])
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    for mode in _modes():
        with mode:  # type: ignore[attr-defined]
            x = model.get_submodule("embed")(ids)
            attended = attention(x, x, x, attn_mask=causal, key_padding_mask=ids == 0,
                                 need_weights=False)[0]
            expected = decoder(attended, source, tgt_mask=causal, tgt_key_padding_mask=ids == 0,
                               memory_key_padding_mask=source_ids == 0, tgt_is_causal=True)
            assert torch.allclose(model(ids, source, source_ids), expected, atol=1e-6)


def test_causal_means_no_position_sees_a_later_one_at_any_length() -> None:
    model, _ = _compiled("  - {transformer_encoder: {num_layers: 2, nhead: 2, dim_feedforward: "
                         "16, dropout: 0.0, causal: true}}\n")
    with torch.inference_mode():
        for length in (3, 6, 40):  # the mask is built from the runtime length
            ids = torch.randint(1, 20, (2, length))
            changed = ids.clone()
            changed[:, -1] = (ids[:, -1] % 19) + 1  # another last token
            before, after = model(ids), model(changed)
            assert torch.equal(before[:, :-1], after[:, :-1])
            assert not torch.allclose(before[:, -1], after[:, -1])


def test_padding_positions_change_nothing_else() -> None:
    model, _ = _compiled("  - {transformer_encoder: {num_layers: 1, nhead: 2, dim_feedforward: "
                         "16, dropout: 0.0, pad_id: 0}, from: [embed, tokens]}\n")
    ids = torch.tensor([[5, 6, 7, 0, 0, 0]])
    with torch.inference_mode():
        shorter = model(ids[:, :3])
        padded = model(ids)
    assert torch.allclose(padded[:, :3], shorter, atol=1e-6)


def test_a_query_with_nothing_to_attend_to_gives_no_nan() -> None:
    # a sample of padding only, and left padding under a causal mask: softmax over no key
    # at all is NaN in PyTorch's fast path, which would spread into the next layer
    model, _ = _compiled("  - {transformer_encoder: {num_layers: 2, nhead: 2, dim_feedforward: "
                         "16, dropout: 0.0, causal: true, pad_id: 0}, from: [embed, tokens]}\n")
    ids = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 0, 4, 5, 6, 7]])
    for mode in _modes():
        with mode:  # type: ignore[attr-defined]
            assert torch.isfinite(model(ids)).all()


def _problem(layers: str, inputs: str = "") -> dlspec.errors.Problem:
    with pytest.raises(dlspec.ShapeError) as raised:
        dlspec.shapes(dlspec.loads(HEAD.replace("network:", inputs + "network:") + layers))
    (problem,) = raised.value.problems
    return problem


ENCODER = "  - {name: enc, transformer_encoder: {num_layers: 1, nhead: 2, pad_id: 0}, from: "


def test_wrong_pad_ids_are_located_errors_with_hints() -> None:
    problem = _problem(ENCODER + "[embed, other]}\n", "  other: {shape: [7], dtype: int64}\n")
    assert problem.path == ("network", 1, "transformer_encoder")
    assert "pad ids have 7 positions but its input has 6" in problem.message
    assert "token ids of the input itself" in (problem.hint or "")

    problem = _problem(ENCODER + "[tokens, embed]}\n")
    assert "pad_id reads the token ids last" in problem.message
    assert "from: [embedded, tokens]" in (problem.hint or "")

    problem = _problem(ENCODER + "[embed, embed]}\n")
    assert "should be token ids, one per position" in problem.message

    problem = _problem(ENCODER + "embed}\n")
    assert "reads [input] and then the token ids" in problem.message
    assert "from: [input, tokens]" in (problem.hint or "")

    problem = _problem("  - {transformer_encoder: {num_layers: 1, nhead: 2}, "
                       "from: [embed, tokens]}\n")
    assert "reads 1 input" in problem.message and "add pad_id" in (problem.hint or "")


def test_float_pad_ids_and_int_features_are_refused() -> None:
    problem = _problem(ENCODER + "[embed, lengths]}\n", "  lengths: {shape: [6]}\n")
    assert problem.path == ("network", 1, "transformer_encoder")
    assert "pad ids input is float32, not token ids" in problem.message
    with pytest.raises(dlspec.ShapeError, match="multihead_attention needs a floating-point "
                       "input but receives int64 .*token ids go through an `embedding` first"):
        dlspec.shapes(dlspec.loads("dlspec: 1\nname: ints\ninputs: {x: {shape: [6, 4], dtype: "
                                   "int64}}\nnetwork: [{multihead_attention: {num_heads: 1, "
                                   "causal: true}}]\n"))


def test_causal_cross_attention_needs_matching_lengths() -> None:
    problem = _problem("  - {multihead_attention: {num_heads: 2, causal: true}, "
                       "from: [embed, memory, memory]}\n", "  memory: {shape: [9, 8]}\n")
    assert "query has 6 and the key 9" in problem.message
    assert "leave it out for cross-attention" in (problem.hint or "")


def test_generated_code_carries_the_masks() -> None:
    model, spec = _compiled("  - {name: enc, transformer_encoder: {num_layers: 1, nhead: 2, "
                            "dim_feedforward: 16, dropout: 0.0, causal: true, pad_id: 0}, "
                            "from: [embed, tokens]}\n")
    source = generate_code(next(iter(dlspec.shapes(spec).values())))
    assert "class AttentionMasks:" in source and "causal=True, pad_id=0" in source
    namespace: dict[str, object] = {"__name__": "generated"}
    exec(compile(source, "generated.py", "exec"), namespace)  # noqa: S102 - our own output
    standalone = namespace["Masks"]()  # type: ignore[operator]
    standalone.load_state_dict(model.state_dict())
    ids = _tokens()
    with torch.inference_mode():
        assert torch.equal(standalone.eval()(ids), model(ids))


GPT = """\
dlspec: 1
name: gpt
inputs:
  tokens: {shape: [16], dtype: int64}
network:
  - {name: embed, embedding: {num_embeddings: 30, embedding_dim: 16}}
  - {name: position, positional_encoding: {max_len: 160}}
  - name: decoder
    transformer_encoder: {num_layers: 1, nhead: 2, dim_feedforward: 32, dropout: 0.0,
                          causal: true, pad_id: 0}
    from: [position, tokens]
  - {name: head, linear: 30}
export: {onnx: {dynamic_axes: [batch, seq]}}
"""


@pytest.mark.slow  # ~7 s: the ONNX export, and 12 comparisons
def test_a_causal_padded_model_exports_and_runs_at_lengths_beyond_the_traced_one(
        tmp_path: Path) -> None:
    spec = dlspec.loads(GPT)
    (result,) = dlspec.export_spec(spec, tmp_path / "gpt.onnx")
    assert all(c.passed for c in result.comparisons)
    assert {c.sequence for c in result.comparisons} == {1, 5, 13, 67}  # 67 > 16 and > 64
    torch.manual_seed(spec.train.seed)  # the weights export_spec used
    model = compile_graph(dlspec.shapes(spec)["gpt"]).eval()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for length in (100, 160):  # up to positional_encoding's max_len
        ids = torch.randint(1, 30, (2, length))
        ids[0, length // 2:] = 0
        ids[1, :3] = 0  # left padding too
        (got,) = session.run(None, {"tokens": ids.numpy()})
        with torch.inference_mode():
            expected = model(ids).numpy()
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
