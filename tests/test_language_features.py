"""The spec language's structural features: conditional and first-copy layers, kinds as block
parameters, blocks with several inputs reading their inputs' shapes, shared and tied weights,
split/chunk parts, flat residuals with stochastic depth, explicit initial values and an RNN's
state. Each is checked against what the same network computes written by hand."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dlspec
from dlspec.api import loads
from dlspec.errors import DlspecError

HEADER = "dlspec: 1\nname: net\n"


def _spec(body: str) -> dlspec.Spec:
    return loads(HEADER + textwrap.dedent(body), "net.yaml")


def _model(body: str) -> torch.fx.GraphModule:
    model = dlspec.compile_spec(_spec(body))
    model.eval()
    return model


def _shaped(body: str) -> dlspec.ShapedGraph:
    return dlspec.shapes(_spec(body))["net"]


def _error(body: str) -> str:
    with pytest.raises(DlspecError) as caught:
        dlspec.shapes(_spec(body))
    return str(caught.value)


# --- if:, repeat: 0, repeat: {count, first} -------------------------------------------------

MBCONV = """\
inputs: {x: {shape: [8, 6, 6]}}
blocks:
  mb:
    params: {expand: int, out: int, act: {default: relu}}
    layers:
      - name: grow
        conv2d: {out_channels: $(in.channels * expand), kernel_size: 1}
        if: $(expand != 1)
      - $act
      - {name: project, conv2d: {out_channels: $out, kernel_size: 1}}
network:
  - {name: a, mb: {expand: 1, out: 8}}
  - {name: b, mb: {expand: 6, out: 4, act: {leaky_relu: 0.2}}}
  - {name: none, relu, repeat: 0}
  - {name: c, mb: {expand: 2, out: 4}, repeat: {count: 3, first: {out: 16}}}
"""


def test_conditional_layers_kinds_as_parameters_and_first_copies() -> None:
    shaped = _shaped(MBCONV)
    kinds = {node.name: node.kind for node, _ in shaped}
    assert "a.grow" not in kinds and kinds["b.grow"] == "conv2d"  # if: $(expand != 1)
    assert kinds["a.relu_1"] == "relu" and kinds["b.leaky_relu_1"] == "leaky_relu"
    assert not any(name.startswith("none") for name in kinds)  # repeat: 0 leaves it out
    # $(in.channels * expand) reads each block's own input: 8·6, then 16·2 and 4·2
    assert shaped.tensors["b.grow"].shape == (48, 6, 6)
    assert shaped.tensors["c.0.project"].shape == (16, 6, 6)  # first: {out: 16}
    assert shaped.tensors["c.1.grow"].shape == (32, 6, 6)
    assert shaped.tensors["c.2.project"].shape == (4, 6, 6)


def test_a_left_out_layers_name_stands_for_its_input() -> None:
    model = _model("""\
        inputs: {x: {shape: [4]}}
        network:
          - {name: maybe, linear: 4, if: false}
          - {name: out, add, from: [maybe, x]}
        """)
    x = torch.randn(3, 4)
    assert torch.equal(model(x), x + x)
    skip = _model("""\
        inputs: {x: {shape: [4]}}
        network:
          - {name: body, linear: 4}
          - {name: out, add, from: [body, x], if: false}
        """)
    assert torch.equal(skip(x), skip.body(x))  # a left-out merge passes its first input


def test_first_needs_the_arguments_as_a_mapping() -> None:
    message = _error("""\
        inputs: {x: {shape: [4]}}
        network:
          - {linear: 4, repeat: {count: 2, first: {bias: false}}}
        """)
    assert "network[0].repeat.first: first: changes arguments by name" in message


# --- blocks with several inputs ------------------------------------------------------------

UNET_STAGE = """\
inputs: {x: {shape: [8, 8, 8]}}
blocks:
  up:
    inputs: [x, skip]
    layers:
      - {name: upconv, conv_transpose2d: {out_channels: $skip.channels, kernel_size: 2, stride: 2}}
      - {name: joined, concat, from: [skip, upconv]}
      - {name: conv, conv2d: {out_channels: $(in.channels // 2), kernel_size: 3, padding: 1}}
network:
  - {name: enc, conv2d: {out_channels: 4, kernel_size: 3, padding: 1}}
  - {name: down, maxpool2d: 2}
  - {name: deep, conv2d: {out_channels: 16, kernel_size: 1}}
  - {name: dec, up, from: [deep, enc]}
"""


def test_a_block_with_two_inputs_computes_the_hand_written_stage() -> None:
    model = _model(UNET_STAGE)
    x = torch.randn(2, 8, 8, 8)
    enc = model.enc(x)
    up = model.dec.upconv(model.deep(torch.nn.functional.max_pool2d(enc, 2)))
    expected = model.dec.conv(torch.cat([enc, up], dim=1))
    assert up.shape[1] == 4 and model.dec.conv.out_channels == 8  # $skip.channels, in // 2
    assert torch.allclose(model(x), expected)


def test_a_block_use_with_the_wrong_number_of_inputs_is_located() -> None:
    message = _error(UNET_STAGE.replace("from: [deep, enc]", "from: deep"))
    assert "network[3]: block up reads 2 inputs (x, skip), but receives 1" in message
    assert "from: [x, skip]" in message


# --- shared and tied weights ---------------------------------------------------------------

SIAMESE = """\
inputs: {left: {shape: [6]}, right: {shape: [6]}}
blocks:
  tower:
    layers: [{name: fc1, linear: 8}, relu, {name: fc2, linear: 4}]
network:
  - {name: a, tower, from: left}
  - {name: b, tower, from: right, share: a}
  - {name: distance, subtract, from: [a, b]}
  - abs
"""


def test_shared_towers_run_one_set_of_weights_stored_once() -> None:
    shaped = _shaped(SIAMESE)
    assert shaped.total_params == (6 * 8 + 8) + (8 * 4 + 4)  # counted once
    model = _model(SIAMESE)
    assert list(model.state_dict()) == ["a.fc1.weight", "a.fc1.bias", "a.fc2.weight",
                                        "a.fc2.bias"]
    left, right = torch.randn(3, 6), torch.randn(3, 6)

    def tower(x: torch.Tensor) -> torch.Tensor:
        return model.a.fc2(torch.relu(model.a.fc1(x)))
    assert torch.allclose(model(left, right), (tower(left) - tower(right)).abs())


def test_sharing_needs_the_same_layers_and_sizes() -> None:
    different = SIAMESE.replace("- {name: b, tower, from: right, share: a}",
                                "- {name: b, linear: 4, from: right, share: a}")
    assert "share: 'a' is made of 3 layers (linear, relu, linear), but this is made of 1 layer" \
        in _error(different)
    wider = SIAMESE.replace("right: {shape: [6]}", "right: {shape: [5]}")
    message = _error(wider)
    assert "cannot share the weights of a.fc1: it is nn.Linear(6, 8, bias=True), but here the " \
           "layer would be nn.Linear(5, 8, bias=True)" in message


TIED = """\
inputs: {tokens: {shape: [5], dtype: int64}}
network:
  - {name: embed, embedding: {num_embeddings: 30, embedding_dim: 8}}
  - {name: mix, linear: 8}
  - {name: head, linear: {out_features: 30, bias: false}, tie: embed}
"""


def test_a_tied_head_reads_the_embedding_table_stored_once() -> None:
    model = _model(TIED)
    assert list(model.state_dict()) == ["embed.weight", "mix.weight", "mix.bias"]
    assert _shaped(TIED).total_params == 30 * 8 + 8 * 8 + 8
    tokens = torch.randint(0, 30, (2, 5))
    expected = model.mix(model.embed(tokens)) @ model.embed.weight.T
    assert torch.allclose(model(tokens), expected, atol=1e-6)
    model.train()
    model(tokens).sum().backward()  # the one table gets the gradient of both uses
    assert model.embed.weight.grad is not None


def test_tying_checks_the_shapes_and_the_kinds() -> None:
    message = _error(TIED.replace("out_features: 30", "out_features: 20"))
    assert "head: its weight would be 20×8 (out × in), but embed's weight is 30×8" in message
    assert "network[2].tie: tie: gives a linear layer another layer's weight" in _error(
        TIED.replace("linear: {out_features: 30, bias: false}, tie: embed", "relu, tie: embed"))
    assert "tie: unknown layer 'embedd'" in _error(TIED.replace("tie: embed", "tie: embedd"))


def test_a_misspelt_key_beside_a_kind_is_called_an_unknown_key() -> None:
    message = str(pytest.raises(DlspecError, dlspec.graphs, _spec(
        TIED.replace("tie: embed", "tied: embed"))).value)
    assert "network[2].tied: unknown key 'tied' beside the layer kind 'linear'" in message
    assert "did you mean 'tie'?" in message
    message = str(pytest.raises(DlspecError, dlspec.graphs, _spec(
        TIED.replace("tie: embed", "weights: embed"))).value)
    assert "unknown key 'weights' beside the layer kind 'linear'; keys beside a kind: name, " \
           "from, repeat, if, share, tie" in message


# --- split and chunk -----------------------------------------------------------------------

SHUFFLE_UNIT = """\
inputs: {x: {shape: [8, 4, 4]}}
network:
  - {name: halves, chunk: 2}
  - {name: branch, conv2d: {out_channels: 4, kernel_size: 1}, from: halves.1}
  - {name: joined, concat, from: [halves.0, branch]}
  - {name: parts, split: {sizes: [2, 6], names: [gate, rest]}}
  - {name: gated, multiply, from: [parts.rest, parts.gate]}
"""


def test_parts_of_a_chunk_and_a_split_are_read_by_name() -> None:
    model = _model(SHUFFLE_UNIT.replace("multiply, from: [parts.rest, parts.gate]",
                                        "concat, from: parts"))
    x = torch.randn(2, 8, 4, 4)
    left, right = x.chunk(2, dim=1)
    joined = torch.cat([left, model.branch(right)], dim=1)
    assert torch.equal(model(x), joined)  # `from: parts` reads every part, in order


def test_split_and_chunk_mistakes_are_located() -> None:
    assert "gated: multiply needs inputs of one shape, or of shapes that broadcast" in _error(
        SHUFFLE_UNIT)
    assert "chunk cannot cut axis 1 of size 8 into 3 equal parts" in _error(
        SHUFFLE_UNIT.replace("chunk: 2", "chunk: 3"))
    assert "split sizes [2, 5] add up to 7, but axis 1 of 8×4×4 has 8" in _error(
        SHUFFLE_UNIT.replace("sizes: [2, 6]", "sizes: [2, 5]"))
    message = _error(SHUFFLE_UNIT.replace("from: halves.1", "from: halves.2"))
    assert "'halves' has no part '2'" in message and "its parts: 0, 1" in message
    message = _error(SHUFFLE_UNIT.replace("- {name: branch, conv2d: {out_channels: 4, "
                                          "kernel_size: 1}, from: halves.1}",
                                          "- {name: branch, conv2d: {out_channels: 4, "
                                          "kernel_size: 1}}"))
    assert "the layer above produces several tensors (a split" in message


# --- flat residuals, drop path, named shortcuts --------------------------------------------

FLAT = """\
inputs: {x: {shape: [4, 8, 8]}}
blocks:
  basic:
    params: {channels: int, stride: {default: 1}}
    layers:
      - residual:
          flat: true
          drop_path: 0.5
          body:
            - name: conv1
              conv2d: {out_channels: $channels, kernel_size: 3, stride: $stride, padding: 1}
            - {name: relu, relu}
          shortcut: {name: downsample, project: true}
      - relu
network:
  - {name: layer1, basic: {channels: 4}, repeat: 2}
  - {name: layer2, basic: {channels: 8}, repeat: {count: 2, first: {stride: 2}}}
"""


def test_a_flat_residual_names_its_layers_in_the_block() -> None:
    model = _model(FLAT)
    keys = list(model.state_dict())
    assert "layer1.0.conv1.weight" in keys and "layer2.0.downsample.0.weight" in keys
    assert not any(k.startswith(("layer1.0.downsample", "layer2.1.downsample")) for k in keys)
    x = torch.randn(2, 4, 8, 8)
    block = model.layer1.get_submodule("0")
    expected = torch.relu(torch.relu(block.conv1(x)) + x)  # drop path: identity in eval
    out = model(x)
    assert out.shape == (2, 8, 4, 4)
    first = dlspec.compile_spec(_spec(FLAT.replace(
        "  - {name: layer2, basic: {channels: 8}, repeat: {count: 2, first: {stride: 2}}}\n",
        "").replace("repeat: 2", "repeat: 1"))).eval()
    first.load_state_dict({k: v for k, v in model.state_dict().items()
                           if k.startswith("layer1.0.")})
    assert torch.allclose(first(x), expected, atol=1e-6)


def test_drop_path_drops_whole_samples_while_training() -> None:
    model = _model(FLAT)
    model.train()
    torch.manual_seed(0)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor
               ) -> None:
        seen.setdefault("io", (inputs[0], output))
    handle = model.layer1.get_submodule("0").drop_path.register_forward_hook(record)
    model(torch.randn(64, 4, 8, 8))
    handle.remove()
    body, out = seen["io"]
    dropped = [bool((o == 0).all()) for o in out]
    kept = [torch.allclose(o, b * 2) for b, o in zip(body, out, strict=True)]
    assert all(d or k for d, k in zip(dropped, kept, strict=True))  # whole samples, p = 0.5
    assert 16 < sum(dropped) < 48


def test_a_name_used_twice_in_a_flat_scope_is_an_error() -> None:
    message = _error(FLAT.replace("{name: relu, relu}", "{name: conv1, relu}"))
    assert "name 'conv1' is already used in this scope" in message


# --- explicit initial values ---------------------------------------------------------------

NAND = """\
inputs: {x: {shape: [2]}}
network:
  - {name: neuron, linear: 1, init: {weight: [[-2, -2]], bias: [3]}}
  - step
"""


def test_the_hand_set_nand_perceptron(tmp_path: Path) -> None:
    model = _model(NAND)
    inputs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert model(inputs).flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    spec = tmp_path / "nand.yaml"
    spec.write_text(HEADER + NAND)
    code = subprocess.run([sys.executable, "-m", "dlspec", "code", str(spec)],
                          capture_output=True, text=True, check=True).stdout
    assert "self.get_parameter('neuron.weight').copy_(torch.tensor([[-2, -2]]))" in code


def test_explicit_values_of_the_wrong_shape_are_located() -> None:
    message = _error(NAND.replace("[[-2, -2]]", "[-2, -2]"))
    assert "network[0].linear: neuron: init weight values have shape 2, but the layer's " \
           "weight is 1×2" in message
    assert "ragged" in _error(NAND.replace("[[-2, -2]]", "[[-2, -2], [1]]"))


# --- an RNN's state ------------------------------------------------------------------------

SEQ2SEQ = """\
inputs:
  source: {shape: [7], dtype: int64}
  target: {shape: [5], dtype: int64}
network:
  - {name: src_embed, embedding: {num_embeddings: 20, embedding_dim: 8}, from: source}
  - {name: encoder, lstm: {hidden_size: 16, num_layers: 2, return: state}}
  - {name: tgt_embed, embedding: {num_embeddings: 20, embedding_dim: 8}, from: target}
  - name: decoder
    lstm: {hidden_size: 16, num_layers: 2, return: sequence}
    from: [tgt_embed, encoder]
"""


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_an_encoder_state_starts_the_decoder(cell: str) -> None:
    model = _model(SEQ2SEQ.replace("lstm", cell))
    assert _shaped(SEQ2SEQ.replace("lstm", cell)).tensors["encoder"].shape == (
        (2, 2, 16) if cell == "lstm" else (2, 16))
    source, target = torch.randint(0, 20, (3, 7)), torch.randint(0, 20, (3, 5))
    rnn = getattr(torch.nn, cell.upper())
    encoder, decoder = rnn(8, 16, 2, batch_first=True), rnn(8, 16, 2, batch_first=True)
    encoder.load_state_dict(model.encoder.state_dict())
    decoder.load_state_dict(model.decoder.state_dict())
    _, state = encoder(model.src_embed(source))
    expected, _ = decoder(model.tgt_embed(target), state)
    assert torch.allclose(model(source, target), expected, atol=1e-6)


def test_an_initial_state_of_the_wrong_size_is_located() -> None:
    message = _error(SEQ2SEQ.replace("hidden_size: 16, num_layers: 2, return: state",
                                     "hidden_size: 16, return: state"))
    assert "its initial state (second input) is 2×1×16, but the state of this lstm is 2×2×16" \
        in message
    assert "return: state" in message


# --- through the CLI: check, code and export -----------------------------------------------

def test_the_cli_checks_exports_and_prints_code_for_shared_tied_and_split(
        tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(HEADER + TIED.replace("  - {name: mix, linear: 8}\n", """\
  - {name: mix, linear: 8}
  - {name: again, linear: 8, share: mix}
  - {name: halves, chunk: {chunks: 2, dim: 2}}
  - {name: both, concat: {dim: 2}, from: halves}
"""))
    run = [sys.executable, "-m", "dlspec"]
    summary = subprocess.run([*run, "summary", str(spec)], capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr
    assert "weights of mix" in summary.stdout and "weight tied to embed" in summary.stdout
    code = subprocess.run([*run, "code", str(spec)], capture_output=True, text=True,
                          check=True).stdout
    (tmp_path / "model.py").write_text(code)
    standalone = subprocess.run([sys.executable, str(tmp_path / "model.py")],
                                capture_output=True, text=True)
    assert standalone.returncode == 0, standalone.stderr
    export = subprocess.run([*run, "export", str(spec), "-o", str(tmp_path / "net.onnx")],
                            capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    assert "verified in ONNX Runtime" in export.stdout + export.stderr
