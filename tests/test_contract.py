"""The ONNX metadata contract (dlspec.contract): what the exporter writes, the runtime reads.

Writer and reader share one definition of every `dlspec_*` key; these tests fail when they
disagree: a key the exporter writes that the reader drops, changes or refuses.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

import dlspec
from conftest import SPECS
from dlspec import contract
from dlspec.contract import (
    Generator,
    ImageSpec,
    Metadata,
    Normalization,
    Task,
    TensorInfo,
    Translation,
    read_metadata,
)
from dlspec.export.metadata import DeploymentInfo, TensorSpec, metadata_props
from dlspec.graph import ShapedGraph

STATS = {"mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 0.25]}


def test_every_field_is_one_key_written_and_read_back_unchanged() -> None:
    full = Metadata(
        version="0.1.0", spec="net", spec_sha256="ab" * 32, network="generator",
        inputs=[TensorInfo("image", (None, 3, 8, 8)), TensorInfo("label", (None,), "int64")],
        outputs=[TensorInfo("output", (None, 3, 8, 8))],
        task=Task("classification", ["cat", "dog"], True, "output", 0.25),
        normalization={"image": Normalization((0.5,), (0.25,), axis=1)},
        images={"image": ImageSpec(3, (8, 8))},
        generator=Generator({"z": "uniform"}, Normalization((0.5,), (0.5,)), True,
                            {"label": 2}, ["cat", "dog"]),
        translation=Translation(Normalization((0.5,), (0.5,))))
    props = full.to_props()
    assert tuple(props) == contract.KEYS  # every field is written, under its own key
    assert all(key.startswith(contract.PREFIX) for key in props)
    assert read_metadata(props, "m.onnx") == full
    # an empty Metadata writes nothing; a model from elsewhere reads as an empty Metadata
    assert Metadata().to_props() == {}
    assert read_metadata({}, "m.onnx") == Metadata()


def test_the_key_constants_are_the_fields_keys() -> None:
    named = {value for name, value in vars(contract).items()
             if name.isupper() and isinstance(value, str) and value.startswith(contract.PREFIX)
             and value != contract.PREFIX}
    assert named == {contract.PREFIX + field.name for field in fields(Metadata)}


def _interface(shaped: ShapedGraph) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The exported file's interface as the exporter reads it back: a dynamic batch axis."""
    inputs = [TensorSpec(name, [None, *decl.shape], decl.dtype)
              for name, decl in shaped.graph.inputs.items()]
    outputs = [TensorSpec(name, [None, *tensor.shape], "float32")
               for name, tensor in shaped.outputs().items()]
    return inputs, outputs


# (spec, network, what training leaves for deployment, the optional keys it must write)
CASES = {
    "classifier": ("lenet5", "lenet5", DeploymentInfo(
        labels=[str(d) for d in range(10)], normalization={"image": {"mean": [0.5],
                                                                     "std": [0.25]}},
        image_inputs=["image"]), {"dlspec_task", "dlspec_normalization", "dlspec_images"}),
    "gan_generator": ("dcgan", "generator", DeploymentInfo(generator={
        "latent": {"z": "normal"}, "output_normalization": {"mean": [0.5], "std": [0.5]},
        "images": True}), {"dlspec_task", "dlspec_generator"}),
    "conditional_generator": ("cgan", "generator", DeploymentInfo(generator={
        "latent": {"z": "uniform"}, "output_normalization": None, "images": True,
        "labels": {"label": 10}, "class_names": [str(d) for d in range(10)]}),
        {"dlspec_task", "dlspec_generator"}),
    "cyclegan_generator": ("cyclegan", "generator_ab", DeploymentInfo(
        normalization={"image": STATS}, image_inputs=["image"],
        translations={"generator_ab": {"input": STATS, "output": STATS},
                      "generator_ba": {"input": STATS, "output": STATS}}),
        {"dlspec_task", "dlspec_normalization", "dlspec_images", "dlspec_translation"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_what_the_exporter_writes_the_runtime_reads_back(case: str) -> None:
    name, network, info, optional = CASES[case]
    spec = dlspec.load(SPECS / f"{name}.yaml")
    shaped = dlspec.shapes(spec)[network]
    props = metadata_props(spec, shaped, _interface(shaped), info)
    assert set(props) <= set(contract.KEYS)  # no key the reader does not know
    required = {"dlspec_version", "dlspec_spec", "dlspec_spec_sha256", "dlspec_network",
                "dlspec_inputs", "dlspec_outputs"}
    assert set(props) == required | optional
    read = read_metadata(props, "m.onnx")
    assert read.to_props() == props  # nothing written is dropped or changed by the reader
    for key in props:  # and each key fills its field
        assert getattr(read, key.removeprefix(contract.PREFIX)) not in (None, {})


def test_a_cyclegan_generator_reads_its_own_domain_and_undoes_the_other() -> None:
    spec = dlspec.load(SPECS / "cyclegan.yaml")
    shaped = dlspec.shapes(spec)["generator_ba"]
    a, b = {"mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0]}, STATS
    info = DeploymentInfo(translations={"generator_ab": {"input": a, "output": b},
                                        "generator_ba": {"input": b, "output": a}})
    read = read_metadata(metadata_props(spec, shaped, _interface(shaped), info), "m.onnx")
    assert read.normalization == {"image": Normalization((0.5, 0.25, 0.125), (0.5, 0.5, 0.25))}
    assert read.translation == Translation(Normalization((0.1, 0.2, 0.3), (1.0, 1.0, 1.0)))


def test_the_exporter_refuses_what_the_runtime_would_refuse() -> None:
    spec = dlspec.load(SPECS / "dcgan.yaml")
    shaped = dlspec.shapes(spec)["generator"]
    info = DeploymentInfo(generator={"latent": {"z": "cauchy"}, "images": True})
    with pytest.raises(dlspec.SpecError, match="metadata dlspec_generator is malformed"):
        metadata_props(spec, shaped, _interface(shaped), info)


def test_which_tasks_classify_comes_from_the_task_table() -> None:
    from dlspec.tasks import classifying_tasks, task_names

    for name in task_names():
        assert Task(name).is_classifier == (name in classifying_tasks())
    assert Task("classification").is_classifier and not Task("regression").is_classifier


def test_an_exported_file_carries_the_contract(tmp_path: Path) -> None:
    import onnx

    (result,) = dlspec.export_spec(SPECS / "mlp.yaml", tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    read = read_metadata(props, str(result.path))
    assert read.to_props() == props
    assert json.loads(props["dlspec_inputs"]) == [t.to_json() for t in read.inputs or []]
