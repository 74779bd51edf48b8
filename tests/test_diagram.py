"""`dlspec diagram`: the produced DOT and SVG are parsed and checked, not just found on disk.

DOT is read by the small parser below (enough for what the `graphviz` package writes);
SVG with ElementTree, through the `class` attributes the renderer sets (`node layer`,
`node group`, `edge skip`, `cluster cluster-repeat folded`, ...). Rendering tests skip
themselves where Graphviz's `dot` is not installed; everything else needs only the
`graphviz` Python package. Every spec in specs/ is drawn by one parametrised test.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dlspec
from conftest import ROOT, SPECS
from dlspec.diagram import DiagramOptions, dot_source, draw, make_diagram
from dlspec.diagram.command import add_parser
from dlspec.diagram.drawing import output_paths
from dlspec.errors import DlspecError, SpecError
from dlspec.graph import ShapedGraph
from dlspec.spec.model import Spec

pytest.importorskip("graphviz")

SPEC_PATHS = sorted(SPECS.glob("*.yaml"))
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
SVG = "{http://www.w3.org/2000/svg}"
WriteSpec = Callable[[str, str], Path]


# --- a small DOT reader --------------------------------------------------------------------

@dataclass
class DotCluster:
    name: str
    parent: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)  # declared directly inside


@dataclass
class Dot:
    graph: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    clusters: dict[str, DotCluster] = field(default_factory=dict)
    home: dict[str, str | None] = field(default_factory=dict)  # node → innermost cluster

    def with_class(self, word: str) -> dict[str, dict[str, str]]:
        return {k: v for k, v in self.nodes.items() if word in v.get("class", "").split()}

    def visible_edges(self) -> list[tuple[str, str, dict[str, str]]]:
        return [e for e in self.edges if e[2].get("style") != "invis"]

    def inside(self, cluster: str) -> set[str]:
        """Every node in `cluster`, nested clusters included."""
        found = set()
        for node, home in self.home.items():
            while home is not None:
                if home == cluster:
                    found.add(node)
                    break
                home = self.clusters[home].parent if home in self.clusters else None
        return found


def _tokens(text: str) -> list[str]:
    tokens, i = [], 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif text.startswith("->", i):
            tokens.append("->")
            i += 2
        elif char in "{}[];=,":
            tokens.append(char)
            i += 1
        elif char == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            tokens.append(text[i:end + 1])
            i = end + 1
        elif char == "<":
            depth, end = 0, i
            while True:
                depth += {"<": 1, ">": -1}.get(text[end], 0)
                end += 1
                if depth == 0:
                    break
            tokens.append(text[i:end])
            i = end
        else:
            match = re.compile(r"[^\s{}\[\];=,\"<]+").match(text, i)
            assert match, text[i:i + 40]
            tokens.append(match.group())
            i = match.end()
    return tokens


def _value(token: str) -> str:
    if token.startswith('"'):
        return token[1:-1].replace('\\"', '"')
    if token.startswith("<"):
        return token[1:-1]
    return token


def parse_dot(text: str) -> Dot:
    """Nodes, edges and clusters of the DOT source the `graphviz` package writes."""
    dot = Dot()
    tokens = _tokens(text)
    assert tokens[0] in ("digraph", "graph")
    position = tokens.index("{") + 1
    _statements(tokens, position, dot, None)
    return dot


def _attributes(tokens: list[str], i: int) -> tuple[dict[str, str], int]:
    attributes: dict[str, str] = {}
    assert tokens[i] == "["
    i += 1
    while tokens[i] != "]":
        if tokens[i] in (",", ";"):
            i += 1
            continue
        attributes[_value(tokens[i])] = _value(tokens[i + 2])
        i += 3
    return attributes, i + 1


def _statements(tokens: list[str], i: int, dot: Dot, cluster: str | None) -> int:
    while tokens[i] != "}":
        token = tokens[i]
        if token == ";":
            i += 1
        elif token == "{":  # an anonymous subgraph (rank=same)
            i = _statements(tokens, i + 1, dot, cluster)
        elif token == "subgraph":
            name = None
            if tokens[i + 1] != "{":
                name = _value(tokens[i + 1])
                i += 1
            inner = cluster
            if name and name.startswith("cluster"):
                dot.clusters[name] = DotCluster(name, cluster)
                inner = name
            i = _statements(tokens, i + 2, dot, inner)
        elif token in ("graph", "node", "edge") and tokens[i + 1] == "[":
            attributes, i = _attributes(tokens, i + 1)
            if token == "graph":
                (dot.clusters[cluster].attributes if cluster else dot.graph).update(attributes)
        elif tokens[i + 1] == "=":
            owner = dot.clusters[cluster].attributes if cluster else dot.graph
            owner[_value(token)] = _value(tokens[i + 2])
            i += 3
        elif tokens[i + 1] == "->":
            source, target = _value(token), _value(tokens[i + 2])
            i += 3
            attributes = {}
            if tokens[i] == "[":
                attributes, i = _attributes(tokens, i)
            dot.edges.append((source, target, attributes))
        else:
            node = _value(token)
            i += 1
            attributes = {}
            if tokens[i] == "[":
                attributes, i = _attributes(tokens, i)
            if node not in dot.nodes:
                dot.home[node] = cluster
                if cluster:
                    dot.clusters[cluster].nodes.append(node)
            dot.nodes.setdefault(node, {}).update(attributes)
    return i + 1


def text_of(label: str) -> str:
    """An HTML-like label as plain text, lines joined by newlines."""
    return re.sub(r"<[^>]+>", "", re.sub(r"<BR[^>]*>", "\n", label)).strip()


# --- helpers -------------------------------------------------------------------------------

@functools.cache
def _spec(name: str) -> Spec:
    return dlspec.load(SPECS / f"{name}.yaml")


@functools.cache
def _shapes(name: str) -> dict[str, ShapedGraph]:
    return dlspec.shapes(_spec(name))


def dot_of(name: str, **options: Any) -> Dot:
    """The parsed DOT source of a spec in specs/ (shape inference cached per spec)."""
    source = _shapes(name) if options.get("shapes", True) else dlspec.graphs(_spec(name))
    return parse_dot(dot_source(source, DiagramOptions(**options)))


def layers(dot: Dot) -> dict[str, dict[str, str]]:
    return dot.with_class("layer")


def svg_nodes(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Node title → (classes, text lines) of a rendered SVG."""
    root = ET.parse(path).getroot()
    found = {}
    for group in root.iter(f"{SVG}g"):
        classes = group.get("class", "").split()
        if "node" in classes:
            title = group.findtext(f"{SVG}title") or ""
            found[title] = (classes, [(t.text or "").strip() for t in group.iter(f"{SVG}text")])
    return found


def svg_groups(path: Path, word: str) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    return [g for g in root.iter(f"{SVG}g") if word in g.get("class", "").split()]


def _x_range(group: ET.Element) -> tuple[float, float]:
    shape = next(group.iter(f"{SVG}path"), None)  # an Element without children is falsy
    if shape is None:
        shape = next(group.iter(f"{SVG}polygon"), None)
    assert shape is not None
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", shape.get("d") or
                                            shape.get("points") or "")]
    xs = numbers[0::2]
    return min(xs), max(xs)


# --- LeNet-5: every layer, its label and the chain of edges ----------------------------------

def test_lenet5_dot_has_one_box_per_layer_with_kind_hyperparameters_shape_and_count() -> None:
    dot = dot_of("lenet5")
    boxes = layers(dot)
    assert len(boxes) == 12
    assert list(boxes)[:3] == ["c1", "tanh_1", "s2"]
    assert text_of(boxes["c1"]["label"]) == "c1  conv2d 5×5, 6 ch\n6×28×28 · 156 params"
    assert text_of(boxes["c5"]["label"]) == "c5  linear 120 units\n120 · 48,120 params"
    assert text_of(boxes["s2"]["label"]) == "s2  avgpool2d 2×2\n6×14×14"
    assert text_of(boxes["tanh_1"]["label"]) == "tanh"  # a made-up name: the kind says it all
    assert "family-convolution" in boxes["c1"]["class"]
    assert boxes["c1"]["fillcolor"] != boxes["c5"]["fillcolor"] != boxes["s2"]["fillcolor"]
    assert dot.clusters == {}


def test_lenet5_inputs_and_outputs_are_drawn_distinctly_and_chained() -> None:
    dot = dot_of("lenet5")
    (image,) = dot.with_class("input")
    (output,) = dot.with_class("output")
    assert text_of(dot.nodes[image]["label"]) == "image\n1×32×32"
    assert text_of(dot.nodes[output]["label"]) == "output\n10"
    assert dot.nodes[image]["fillcolor"] not in {b["fillcolor"] for b in layers(dot).values()}
    chain = [image, *layers(dot), output]
    assert [(a, b) for a, b, _ in dot.visible_edges()] == list(zip(chain, chain[1:],
                                                                  strict=False))
    assert "61,706 parameters" in text_of(dot.graph["label"])


def test_legend_lists_the_families_drawn() -> None:
    legend = text_of(dot_of("lenet5").graph["label"])
    for family in ("convolution", "activation", "pooling", "reshape", "dense"):
        assert family in legend
    assert "normalisation" not in legend and "skip" not in legend
    assert "convolution" not in text_of(dot_of("lenet5", legend=False).graph["label"])


@needs_dot
def test_lenet5_svg_names_every_layer(tmp_path: Path) -> None:
    result = draw(_shapes("lenet5"), tmp_path / "lenet5.svg")
    assert result.paths == [tmp_path / "lenet5.dot", tmp_path / "lenet5.svg"]
    nodes = svg_nodes(tmp_path / "lenet5.svg")
    drawn = {k: v for k, v in nodes.items() if "layer" in v[0]}
    assert len(drawn) == 12 == result.boxes
    assert drawn["c1"][1] == ["c1", "conv2d 5×5, 6 ch", "6×28×28 · 156 params"]
    assert drawn["output"][1] == ["output", "linear 10 units", "10 · 850 params"]
    assert "input" in nodes["image"][0]


# --- ResNet: clusters, folds, skip edges ---------------------------------------------------

def test_resnet18_stages_are_folded_repeats_labelled_with_their_first_copy() -> None:
    dot = dot_of("resnet18")
    label = text_of(dot.nodes["cluster_layer2#label"]["label"])
    # each stage is `repeat: {count: 2, first: {stride: 2}}` of the flat basic block
    assert label == "layer2 ×2  525,568 params, all 2\nbasic(channels=128) · first: stride=2"
    assert dot.clusters["cluster_layer2"].attributes["class"] == "cluster-repeat folded"
    assert "layer2.0.conv1" in dot.clusters["cluster_layer2"].nodes
    assert text_of(layers(dot)["layer2.0.conv1"]["label"]).startswith(
        "conv1  conv2d 3×3, 128 ch, stride 2, pad 1, no bias\n128×28×28 · 73,728 params")
    plain = text_of(dot.nodes["cluster_layer1#label"]["label"])
    assert plain == "layer1 ×2  147,968 params, all 2\nbasic(channels=64, stride=1)"


def test_resnet34_folds_each_repeat_into_its_first_copy_and_expand_draws_all() -> None:
    folded, expanded = dot_of("resnet34"), dot_of("resnet34", expand=True)
    label = text_of(folded.nodes["cluster_layer3#label"]["label"])
    assert label.startswith("layer3 ×6")
    shaped = _shapes("resnet34")["resnet34"]
    total = sum(i.params for n, i in shaped if n.name.startswith("layer3."))
    assert f"{total:,} params, all 6" in label
    assert not any(".layer3.1." in n for n in layers(folded))
    assert "layer3.5.conv1" in layers(expanded)
    # 135 layers, less the projections that shape inference found to be no-ops
    assert len(layers(folded)) == 38 and len(layers(expanded)) == 122
    inside = folded.inside("cluster_layer3")
    after = [(a, b) for a, b, _ in folded.visible_edges() if a in inside and b not in inside]
    assert after == [("layer3.0.relu_1", "layer4.0.conv1"),
                     ("layer3.0.relu_1", "layer4.0.downsample")]


def test_resnet18_skip_connections_run_around_each_block() -> None:
    dot = dot_of("resnet18", expand=True)
    skips = [(a, b) for a, b, attributes in dot.edges if attributes.get("class") == "skip"]
    adds = [n for n in layers(dot) if n.endswith(".add")]
    assert len(adds) == 8
    for add in adds:  # every merge has a skip into it: the identity or the projection
        assert any(b == add for _, b in skips), add
    projection = [b for a, b in skips if b.endswith(".downsample")]
    assert projection == ["layer2.0.downsample", "layer3.0.downsample",
                          "layer4.0.downsample"]  # layer1's shapes agree: no-op
    assert "layer1.0.downsample" not in dot.nodes


@needs_dot
def test_resnet18_svg_has_clusters_fold_and_skip_edges(tmp_path: Path) -> None:
    draw(_shapes("resnet18"), tmp_path / "r.svg")
    folded = [g.findtext(f"{SVG}title") for g in svg_groups(tmp_path / "r.svg", "folded")]
    assert folded == [f"cluster_layer{i}" for i in range(1, 5)]
    labels = svg_nodes(tmp_path / "r.svg")["cluster_layer1#label"][1]
    assert labels[0] == "layer1" and "×2" in labels
    assert len(svg_groups(tmp_path / "r.svg", "skip")) == 7


def test_unet_concatenated_encoder_maps_are_skip_edges() -> None:
    dot = dot_of("unet_small")
    skips = {(a, b) for a, b, attributes in dot.edges if attributes.get("class") == "skip"}
    assert skips == {("enc1.relu_2", "skip1"), ("enc2.relu_2", "skip2"),
                     ("enc3.relu_2", "skip3")}


def test_parallel_branches_are_clusters_fed_through_one_fork() -> None:
    dot = dot_of("inception_block")
    branches = [c for c, v in dot.clusters.items() if v.parent == "cluster_inception3a.branches"]
    assert [text_of(dot.nodes[c + "#label"]["label"]).split()[0] for c in branches] == [
        "b1x1", "b3x3", "b5x5", "pool"]
    fork = "cluster_inception3a.branches/fork"
    assert len([b for a, b, attributes in dot.visible_edges() if a == fork]) == 4


# --- depth, frozen, several networks, no shapes ----------------------------------------------

def test_depth_collapses_deeper_groups_into_boxes_with_summed_parameters() -> None:
    shaped = _shapes("resnet152")["resnet152"]
    dot = dot_of("resnet152", depth=1)
    groups = dot.with_class("group")
    assert list(groups) == [f"layer{i}/group" for i in range(1, 5)]
    layer3 = sum(i.params for n, i in shaped if n.name.startswith("layer3."))
    assert text_of(groups["layer3/group"]["label"]) == (
        f"layer3 ×36\nbottleneck(channels=256) · first: stride=2\n1024×14×14 · "
        f"{layer3:,} params")
    assert len(layers(dot)) + len(groups) == 11 and dot.clusters == {}
    deeper = dot_of("resnet152", depth=2)
    assert "cluster_layer3" in deeper.clusters
    assert "layer3.0.conv2" in deeper.clusters["cluster_layer3"].nodes


FROZEN = """\
dlspec: 1
name: frozen
description: a "quoted" <description> & more
inputs:
  x: {shape: [8]}
blocks:
  pair:
    params: {width: int}
    layers: [{name: a, linear: $width}, relu, {name: b, linear: $width}]
network:
  - {name: encoder, pair: {width: 16}, trainable: false}
  - {name: head, linear: 4}
"""


def test_frozen_layers_and_blocks_are_marked(write_spec: WriteSpec) -> None:
    path = write_spec(FROZEN, "frozen.yaml")
    dot = parse_dot(dot_source(path))
    frozen = dot.with_class("frozen")
    assert set(frozen) == {"encoder.a", "encoder.b"}
    assert all("dashed" in v["style"] for v in frozen.values())
    assert text_of(frozen["encoder.a"]["label"]).endswith("· frozen")
    assert "frozen" not in layers(dot)["encoder.relu_1"].get("class", "")
    assert "frozen" in dot.clusters["cluster_encoder"].attributes["class"]
    heading = text_of(dot.graph["label"])
    assert "484 parameters (68 trainable)" in heading and "frozen" in heading


@needs_dot
def test_odd_characters_in_the_description_render(write_spec: WriteSpec,
                                                   tmp_path: Path) -> None:
    path = write_spec(FROZEN, "odd.yaml")
    result = draw(path, tmp_path / "odd.svg")
    texts = [t.text for t in ET.parse(result.paths[1]).getroot().iter(f"{SVG}text")]
    assert 'a "quoted" <description> & more' in texts


def test_gan_draws_each_network_in_its_own_cluster() -> None:
    dot = dot_of("dcgan")
    assert {c for c, v in dot.clusters.items() if v.parent is None} == {
        "cluster_generator", "cluster_discriminator"}
    assert "generator/up1" in dot.inside("cluster_generator")
    assert "discriminator/down1" in dot.inside("cluster_discriminator")
    assert text_of(dot.nodes["discriminator/image"]["label"]) == "image\n1×32×32"
    assert text_of(dot.nodes["generator/image"]["label"]).startswith("image  tanh")


@needs_dot
def test_gan_networks_are_side_by_side(tmp_path: Path) -> None:
    draw(_shapes("dcgan"), tmp_path / "gan.svg")
    networks = {g.findtext(f"{SVG}title"): _x_range(g)
                for g in svg_groups(tmp_path / "gan.svg", "cluster-network")}
    (g_left, g_right), (d_left, d_right) = (networks["cluster_generator"],
                                            networks["cluster_discriminator"])
    assert g_right < d_left or d_right < g_left


def test_no_shapes_draws_from_the_graph_alone() -> None:
    dot = dot_of("lenet5", shapes=False)
    assert text_of(layers(dot)["c1"]["label"]) == "c1  conv2d 5×5, 6 ch"
    assert "parameters" not in text_of(dot.graph["label"])


def test_no_shapes_does_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys, dlspec.diagram as d\n"
            f"r = d.draw({str(SPECS / 'resnet18.yaml')!r}, {str(tmp_path / 'r.dot')!r}, "
            "d.DiagramOptions(shapes=False))\n"
            "assert r.boxes == 39, r\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_edge_shapes_and_direction() -> None:
    dot = dot_of("lenet5", edge_shapes=True, rankdir="LR")
    assert dot.graph["rankdir"] == "LR"
    labels = {(a, b): attributes.get("label", "").strip() for a, b, attributes in dot.edges}
    assert labels[("c1", "tanh_1")] == "6×28×28"
    assert labels[("image", "c1")] == "1×32×32"
    assert all("label" not in attributes for _, _, attributes in dot_of("lenet5").edges)


# --- every spec ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", SPEC_PATHS, ids=[p.stem for p in SPEC_PATHS])
def test_every_spec_draws_each_layer_once(path: Path, tmp_path: Path) -> None:
    shaped = _shapes(path.stem)
    fmt = "svg" if HAS_DOT else "dot"
    result = draw(shaped, tmp_path / f"{path.stem}.{fmt}")
    dot = parse_dot(result.dot.read_text())
    drawn = set(layers(dot)) | set(dot.with_class("group"))
    assert result.boxes == len(drawn) > 0
    for source, target, _ in dot.edges:
        assert source in dot.nodes and target in dot.nodes, (source, target)
    names = {f"{network}/{node.name}" if len(shaped) > 1 else node.name: node
             for network, graph in shaped.items() for node in graph.graph.nodes}
    for name, node in names.items():
        if name not in drawn:  # a later copy of a folded repeat, or a no-op projection
            folded = any(s.kind == "repeat" for s in node.scopes)
            passes = shaped[name.split("/")[0] if len(shaped) > 1 else path.stem].info[
                node.name].build is None
            assert folded or passes, name
    if HAS_DOT:
        assert result.rendered is not None
        nodes = svg_nodes(result.rendered)
        assert {k for k, v in nodes.items() if {"layer", "group"} & set(v[0])} == drawn


# --- files, formats, a missing `dot`, the command ------------------------------------------

def test_output_paths_follow_the_suffix_or_the_format(tmp_path: Path) -> None:
    assert output_paths(Path("a.png"), None) == ("png", Path("a.png"))
    assert output_paths(Path("out/a"), None) == ("svg", Path("out/a.svg"))
    assert output_paths(Path("a"), "pdf") == ("pdf", Path("a.pdf"))
    assert output_paths(Path("a.dot"), None) == ("dot", Path("a.dot"))
    with pytest.raises(SpecError, match=r"a\.svg does not end in \.png"):
        output_paths(Path("a.svg"), "png")


def test_dot_format_writes_only_the_source(tmp_path: Path) -> None:
    result = draw(_shapes("mlp"), tmp_path / "mlp.dot")
    assert result.paths == [tmp_path / "mlp.dot"] and not result.dot_missing
    assert parse_dot((tmp_path / "mlp.dot").read_text()).nodes


def test_without_dot_the_source_is_still_written(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = draw(_shapes("lenet5"), tmp_path / "arch.svg")
    assert result.dot_missing and result.rendered is None
    assert result.paths == [tmp_path / "arch.dot"]
    assert not (tmp_path / "arch.svg").exists()
    assert "install Graphviz" in (result.note() or "")


def _run_command(argv: list[str], capsys: pytest.CaptureFixture[str],
                 ) -> tuple[int, str, str]:
    """The `diagram` sub-command through its own parser, as the main CLI runs it."""
    parser = argparse.ArgumentParser(prog="dlspec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
    except DlspecError as exc:
        print(str(exc), file=sys.stderr)
        code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


@needs_dot
def test_command_writes_picture_and_source(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "arch.png"
    code, stdout, stderr = _run_command(["diagram", str(SPECS / "lenet5.yaml"), "-o",
                                         str(out)], capsys)
    assert code == 0, stderr
    assert stdout == f"wrote {tmp_path / 'arch.dot'}, {out} (12 boxes)\n"
    assert out.read_bytes().startswith(b"\x89PNG")


def test_command_without_dot_notes_once_and_fails_only_when_a_picture_was_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    spec = str(SPECS / "mlp.yaml")
    code, stdout, stderr = _run_command(["diagram", spec, "--no-shapes"], capsys)
    assert code == 0
    assert stdout == "wrote mlp.dot (5 boxes)\n"
    assert stderr.count("install Graphviz") == 1 and stderr.startswith("note: ")
    for explicit in (["--format", "png"], ["-o", "x.svg"]):
        code, _, stderr = _run_command(["diagram", spec, "--no-shapes", *explicit], capsys)
        assert code == 1
        assert stderr.count("install Graphviz") == 1 and "cannot render" in stderr
    code, _, stderr = _run_command(["diagram", spec, "--no-shapes", "--format", "dot"], capsys)
    assert code == 0 and stderr == ""


def test_command_rejects_a_bad_depth(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run_command(["diagram", "x.yaml", "--depth", "0"], capsys)
    with pytest.raises(SpecError, match="draws nothing"):
        make_diagram(_shapes("mlp"), DiagramOptions(depth=0))


def test_real_cli_draws_when_the_command_is_registered(tmp_path: Path) -> None:
    usage = subprocess.run([sys.executable, "-m", "dlspec", "--help"], capture_output=True,
                           text=True, cwd=ROOT)
    if "diagram" not in usage.stdout:
        pytest.skip("`dlspec diagram` is not registered with the CLI yet")
    out = tmp_path / "lenet5.dot"
    result = subprocess.run([sys.executable, "-m", "dlspec", "diagram", "specs/lenet5.yaml",
                             "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert len(layers(parse_dot(out.read_text()))) == 12
    bad = subprocess.run([sys.executable, "-m", "dlspec", "diagram", "specs/nothing.yaml"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
