"""Expansion: names, repeats, blocks, structures and `from:` wiring become a Graph."""

from __future__ import annotations

import dlspec
from conftest import spec_text


def graph(text: str):
    spec = dlspec.loads(text)
    (only,) = dlspec.graphs(spec).values()
    return only


def test_auto_names_count_per_kind_and_given_names_win() -> None:
    g = graph(spec_text("""
        network:
          - linear: 8
          - relu
          - {linear: 8, name: hidden}
          - relu
          - linear: 2
        """))
    assert [n.name for n in g.nodes] == ["linear_1", "relu_1", "hidden", "relu_2", "linear_2"]
    assert g.outputs == {"output": "linear_2"}
    assert g.node("hidden").inputs == ["relu_1"]


def test_repeat_nests_copies_under_the_name() -> None:
    g = graph(spec_text("""
        network:
          - {linear: 8, repeat: 3, name: fc}
          - linear: 1
        """))
    assert [n.name for n in g.nodes] == ["fc.0", "fc.1", "fc.2", "linear_1"]
    assert g.node("fc.2").inputs == ["fc.1"]
    assert g.node("linear_1").inputs == ["fc.2"]


def test_blocks_bind_parameters_and_evaluate_expressions() -> None:
    g = graph(spec_text("""
        blocks:
          mlp:
            params: {width: int, factor: {type: int, default: 2}}
            layers:
              - linear: $(width * factor)
              - relu
              - {linear: {out_features: $width}, name: out}
        network:
          - {mlp: {width: 16}, name: b1}
          - {mlp: {width: 8, factor: 3}, repeat: 2, name: b2}
        """))
    assert g.node("b1.linear_1").params.out_features == 32
    assert g.node("b2.1.linear_1").params.out_features == 24
    assert g.node("b2.1.out").params.out_features == 8
    block_scope = g.node("b2.1.out").scopes[-1]
    assert (block_scope.kind, block_scope.label) == ("block", "mlp(width=8, factor=3)")


def test_from_wires_a_dag_with_merges() -> None:
    g = graph(spec_text("""
        network:
          - {linear: 8, name: a}
          - {linear: 8, name: b, from: x}
          - {add, from: [a, b], name: s}
          - {concat: 1, from: [s, a]}
        """))
    assert g.node("b").inputs == ["x"]
    assert g.node("s").inputs == ["a", "b"]
    assert g.node("concat_1").inputs == ["s", "a"]


def test_residual_project_reads_the_body_shape() -> None:
    g = graph(spec_text("""
        network:
          - residual:
              body: [{linear: 8}, relu]
              shortcut: project
        """))
    names = [n.name for n in g.nodes]
    assert names == ["residual_1.linear_1", "residual_1.relu_1", "residual_1.shortcut",
                     "residual_1.add"]
    shortcut = g.node("residual_1.shortcut")
    assert shortcut.inputs == ["x"] and shortcut.shape_inputs == ["residual_1.relu_1"]
    assert g.node("residual_1.add").inputs == ["residual_1.relu_1", "residual_1.shortcut"]


def test_final_parallel_without_merge_gives_named_outputs() -> None:
    g = graph(spec_text("""
        network:
          - linear: 8
          - parallel:
              branches: {label: [{linear: 3}], score: [{linear: 1}, sigmoid]}
        """))
    assert g.outputs == {"label": "parallel_1.label.linear_1",
                         "score": "parallel_1.score.sigmoid_1"}


def test_trainable_and_init_are_inherited_and_recorded() -> None:
    g = graph(spec_text("""
        network:
          - {sequential: [{linear: 8}, relu, {linear: 8, trainable: true}], trainable: false,
             init: xavier_uniform, name: trunk}
          - {linear: 2, init: {weight: zeros, bias: ones}}
        """))
    assert not g.node("trunk.linear_1").trainable
    assert not g.node("trunk.linear_2").trainable  # an inner true cannot unfreeze
    assert g.node("trunk.linear_1").init.weight == "xavier_uniform"
    head = g.node("linear_1")
    assert head.trainable and (head.init.weight, head.init.bias) == ("zeros", "ones")


def test_networks_expand_separately() -> None:
    spec = dlspec.loads("""
dlspec: 1
name: gan
networks:
  generator:
    inputs: {z: {shape: [4]}}
    network: [{linear: 8}, tanh]
  discriminator:
    inputs: {sample: {shape: [8]}}
    network: [{linear: 1}]
""")
    graphs = dlspec.graphs(spec)
    assert list(graphs) == ["generator", "discriminator"]
    assert graphs["discriminator"].node("linear_1").inputs == ["sample"]


def test_scalar_shorthand_fills_the_main_argument() -> None:
    g = graph(spec_text("network: [{dropout: 0.25}, {linear: 3}, {leaky_relu: 0.2}]\n"))
    assert g.node("dropout_1").params.p == 0.25
    assert g.node("leaky_relu_1").params.negative_slope == 0.2
