"""The training sections' models: every variant validates, every mistake is one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import TypeAdapter, ValidationError

from dlspec.spec.sections import (
    AdamOptimizer,
    CrossEntropyLoss,
    CyclicSchedule,
    DataConfig,
    Loss,
    Optimizer,
    ReduceOnPlateauSchedule,
    Schedule,
    StepSchedule,
    TaskType,
    TrainingSections,
    WassersteinGpLoss,
)
from dlspec.spec.validation import problems_from_validation


def validate(data: dict[str, Any]) -> TrainingSections:
    return TrainingSections.model_validate(data)


def tags(union: Any) -> set[str]:
    """The `type` names of an annotated discriminated union's members."""
    members = get_args(get_args(union)[0])
    return {get_args(m.model_fields["type"].annotation)[0] for m in members}


# ------------------------------------------------------------------ one full example per variant

LOSSES: dict[str, dict[str, Any]] = {
    "contrastive": {"margin": 0.5, "weight": 2.0},
    "cosine_embedding": {"margin": 0.2, "reduction": "sum"},
    "triplet": {"margin": 0.3, "p": 1.0, "swap": True},
    "cross_entropy": {"label_smoothing": 0.1, "weight": [1, 2.5, 1], "ignore_index": -1,
                      "reduction": "sum", "regularization": {"l1": 0.0, "l2": 1e-4}},
    "binary_cross_entropy": {"pos_weight": [2.0], "reduction": "mean"},
    "mse": {"reduction": "sum"},
    "l1": {"regularization": {"l1": 1e-5, "l2": 0.0}},
    "smooth_l1": {"beta": 0.5},
    "huber": {"delta": 2.0},
    "nll": {"weight": [1.0, 3.0], "ignore_index": 0},
    "kl_div": {"log_target": True, "reduction": "batchmean"},
    "minimax": {},
    "non_saturating": {},
    "least_squares": {},
    "hinge": {},
    "wasserstein": {"clip_value": 0.05},
    "wasserstein_gp": {"gp_weight": 5.0},
    "cyclegan": {"adversarial": {"type": "hinge", "regularization": None}, "cycle_weight": 5.0,
                 "identity_weight": 0.0, "pool_size": 0},
}

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "nesterov": True,
            "weight_decay": 5e-4,
            "param_groups": [{"layers": ["backbone.*"], "lr": 0.005, "weight_decay": None}]},
    "adam": {"lr": 3e-4, "betas": [0.5, 0.999], "eps": 1e-7, "amsgrad": True},
    "adamw": {"lr": 1e-3, "weight_decay": 0.05, "betas": [0.9, 0.95]},
    "adagrad": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-9},
    "rmsprop": {"lr": 0.001, "alpha": 0.9, "momentum": 0.5, "centered": True},
    "adadelta": {"lr": 0.5, "rho": 0.95, "eps": 1e-5},
    "adamax": {"lr": 0.002, "betas": [0.8, 0.99]},
    "nadam": {"momentum_decay": 0.005, "decoupled_weight_decay": True},
    "radam": {"decoupled_weight_decay": True, "weight_decay": 0.01},
}

SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": {"warmup": {"epochs": 2, "steps": None, "start_factor": 0.01}},
    "step": {"step_size": 10, "gamma": 0.5, "interval": "epoch"},
    "multistep": {"milestones": [30, 60, 90], "gamma": 0.1},
    "exponential": {"gamma": 0.95},
    "polynomial": {"total_iters": 50, "power": 2.0},
    "cosine": {"T_max": 100, "eta_min": 1e-6,
               "warmup": {"epochs": None, "steps": 500, "start_factor": 1.0}},
    "cosine_restarts": {"T_0": 10, "T_mult": 2, "eta_min": 0.0},
    "cyclic": {"base_lr": 1e-4, "max_lr": 1e-2, "step_size_up": 200, "step_size_down": 100,
               "mode": "exp_range", "gamma": 0.99},
    "one_cycle": {"max_lr": 0.1, "pct_start": 0.25, "anneal_strategy": "linear",
                  "div_factor": 10.0, "final_div_factor": 100.0, "three_phase": True},
    "reduce_on_plateau": {"metric": "val_accuracy", "mode": "max", "factor": 0.5,
                          "patience": 3, "threshold": 0.01, "threshold_mode": "abs",
                          "cooldown": 1, "min_lr": 1e-6},
    "sequential": {"phases": [
        {"schedule": {"type": "constant"}, "epochs": 5},
        {"schedule": {"type": "cosine", "T_max": 45}, "epochs": None},
    ]},
}

TASKS: dict[str, dict[str, Any]] = {
    "classification": {"num_classes": 2, "labels": ["cat", "dog"], "threshold": 0.7},
    "regression": {},
    "sequence_classification": {"num_classes": 5},
    "forecasting": {},
    "segmentation": {"num_classes": 2, "labels": ["background", "shape"]},
    "gan": {},
    "cyclegan": {},
    "token_classification": {"num_classes": 6, "labels": ["a", "b", "c", "d", "e", "f"]},
    "reconstruction": {},
    "metric_learning": {},
}


def contains(found: Any, expected: Any) -> bool:
    """`found` holds every value of `expected`; mappings may hold more (defaults)."""
    if isinstance(expected, dict):
        return all(k in found and contains(found[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return len(found) == len(expected) and all(map(contains, found, expected))
    return found == expected and isinstance(found, bool) == isinstance(expected, bool)


def expect_fields(model: Any, example: dict[str, Any]) -> None:
    dumped = model.model_dump()
    for key, value in example.items():
        assert contains(dumped[key], value), (key, dumped[key])


@pytest.mark.parametrize(
    ("union", "examples"),
    [(Loss, LOSSES), (Optimizer, OPTIMIZERS), (Schedule, SCHEDULES)],
    ids=["loss", "optimizer", "schedule"],
)
def test_every_variant_has_an_example(union: Any, examples: dict[str, Any]) -> None:
    assert tags(union) == set(examples)


def test_every_task_has_an_example() -> None:
    assert set(get_args(TaskType)) == set(TASKS)


@pytest.mark.parametrize(("section", "tag", "example"), [
    *(("loss", t, e) for t, e in LOSSES.items()),
    *(("optimizer", t, e) for t, e in OPTIMIZERS.items()),
    *(("schedule", t, e) for t, e in SCHEDULES.items()),
    *(("task", t, e) for t, e in TASKS.items()),
])
def test_full_variant_examples_validate(section: str, tag: str, example: dict[str, Any]) -> None:
    model = getattr(validate({section: {"type": tag, **example}}), section)
    assert model.type == tag
    expect_fields(model, example)


@pytest.mark.parametrize(("section", "name"), [
    ("task", "classification"),
    ("loss", "cross_entropy"),
    ("loss", "wasserstein_gp"),
    ("optimizer", "adam"),
    ("optimizer", "sgd"),
    ("schedule", "cosine"),
    ("schedule", "constant"),
])
def test_a_bare_name_is_short_for_its_defaults(section: str, name: str) -> None:
    short = getattr(validate({section: name}), section)
    full = getattr(validate({section: {"type": name}}), section)
    assert short == full
    assert short.type == name


def test_design_example_sections() -> None:
    spec = validate({
        "task": "classification",
        "loss": "cross_entropy",
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5.0e-4},
        "schedule": {"type": "step", "step_size": 10, "gamma": 0.5},
        "data": {"dataset": "digits", "resize": [32, 32],
                 "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
        "train": {"epochs": 30, "batch_size": 64, "seed": 0},
        "export": {"onnx": {"opset": 18, "dynamic_axes": ["batch"]}},
    })
    assert spec.optimizer.momentum == 0.9
    assert spec.data.resize == [32, 32]
    assert spec.data.source == "dataset"
    assert spec.train.epochs == 30
    assert spec.export.onnx.opset == 18


def test_defaults_when_sections_are_absent() -> None:
    spec = validate({})
    assert spec.loss is None and spec.data is None and spec.export is None
    assert spec.train.epochs == 10 and spec.train.batch_size == 32 and spec.train.seed == 0


def test_sections_accept_model_instances() -> None:
    spec = TrainingSections(loss=CrossEntropyLoss(label_smoothing=0.1),
                            optimizer={"generator": AdamOptimizer()},
                            data=DataConfig(dataset="iris"))
    assert spec.loss.label_smoothing == 0.1
    assert spec.optimizer["generator"].type == "adam"


def test_one_optimizer_and_schedule_per_network() -> None:
    spec = validate({
        "task": "gan",
        "loss": {"type": "wasserstein_gp", "gp_weight": 10},
        "optimizer": {"generator": {"type": "adam", "lr": 1e-4, "betas": [0.0, 0.9]},
                      "discriminator": "adam"},
        "schedule": {"generator": "constant", "discriminator": {"type": "step", "step_size": 5}},
        "train": {"n_critic": 5, "ema": 0.999},
    })
    assert isinstance(spec.loss, WassersteinGpLoss)
    assert spec.optimizer["generator"].betas == [0.0, 0.9]
    assert spec.optimizer["discriminator"].lr == 1e-3
    assert isinstance(spec.schedule["discriminator"], StepSchedule)
    assert spec.train.n_critic == 5


def test_cyclegan_adversarial_defaults_and_shorthand() -> None:
    assert validate({"loss": "cyclegan"}).loss.adversarial.type == "least_squares"
    loss = validate({"loss": {"type": "cyclegan", "adversarial": "wasserstein_gp"}}).loss
    assert loss.adversarial.gp_weight == 10


def test_schedule_interval_defaults_per_type() -> None:
    assert validate({"schedule": "cosine"}).schedule.effective_interval == "epoch"
    cyclic = validate({"schedule": {"type": "cyclic", "base_lr": 0.001, "max_lr": 0.1}}).schedule
    assert isinstance(cyclic, CyclicSchedule) and cyclic.effective_interval == "batch"
    one_cycle = validate({"schedule": {"type": "one_cycle", "max_lr": 0.1, "interval": "epoch"}})
    assert one_cycle.schedule.effective_interval == "epoch"
    plateau = validate({"schedule": "reduce_on_plateau"}).schedule
    assert isinstance(plateau, ReduceOnPlateauSchedule) and plateau.effective_interval == "epoch"


@pytest.mark.parametrize("source", [
    {"dataset": "moons", "num_samples": 500, "noise": 0.1},
    {"dataset": "sine", "seq_len": 50},
    {"csv": "data/iris.csv", "target": "species", "features": ["a", "b"], "delimiter": ";"},
    {"npz": "data/arrays.npz", "x_key": "images", "y_key": None},
    {"image_folder": "data/sports", "resize": 64, "grayscale": True},
])
def test_data_sources(source: dict[str, Any]) -> None:
    data = validate({"data": {**source, "seed": 3, "shuffle": False}}).data
    assert data.source == next(iter(source))
    assert data.split.train == 0.8


def test_data_short_forms() -> None:
    data = validate({"data": {"dataset": "digits", "resize": 28, "normalize": True,
                              "split": {"train": 0.75, "test": 0.25}}}).data
    assert data.resize == [28, 28]
    assert data.normalize == "auto"
    assert (data.split.train, data.split.val, data.split.test) == (0.75, 0.0, 0.25)
    assert validate({"data": {"dataset": "iris", "normalize": False}}).data.normalize is None
    fixed = validate({"data": {"dataset": "digits",
                               "normalize": {"mean": [0.5], "std": [0.25]}}}).data.normalize
    assert fixed.std == [0.25]


def test_augment_full() -> None:
    augment = validate({"augment": {
        "images": {"random_crop": {"size": [28, 28], "padding": 4}, "horizontal_flip": True,
                   "vertical_flip": 0.1, "rotation": 15,
                   "color_jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.1,
                                    "hue": 0.05}},
        "sequences": {"noise": 0.01, "time_shift": 3, "time_scale": [0.9, 1.1]},
    }}).augment
    assert augment.images.horizontal_flip == 0.5
    assert augment.images.vertical_flip == 0.1
    assert augment.images.random_crop.padding == 4
    assert augment.sequences.time_scale == [0.9, 1.1]
    assert validate({"augment": {}}).augment.images is None


@pytest.mark.parametrize("data", [
    {"data": {"csv": "data/train.csv", "target": "y"}}, {"data": {"npz": "./d.npz"}},
    {"data": {"image_folder": "images/"}}, {"transfer": {"init_from": "pretrain"}},
    {"export": {"onnx": {"file": "onnx/net.onnx"}}},
])
def test_relative_paths_inside_the_folder_are_accepted(data: dict[str, Any]) -> None:
    validate(data)


def test_train_transfer_export_full() -> None:
    spec = validate({
        "train": {"epochs": 5, "batch_size": 128, "seed": 7, "device": "cpu", "amp": True,
                  "precision": "bf16", "compile": True,
                  "early_stopping": {"metric": "val_accuracy", "mode": "max", "patience": 3,
                                     "min_delta": 0.001},
                  "grad_clip": {"norm": 1.0}, "checkpoint_every": 2,
                  "metrics": ["accuracy", "f1"], "log_grad_norms": True, "num_workers": 0,
                  "n_critic": 1, "ema": None, "deterministic": True},
        "transfer": {"init_from": "runs/base/checkpoint.safetensors", "layers": ["backbone.*"],
                     "freeze": ["backbone.*"], "strict": True},
        "export": {"onnx": {"opset": 17, "dynamic_axes": ["batch", "seq"], "atol": 1e-5,
                            "rtol": 1e-4, "optimize": True, "file": "net.onnx"}},
    })
    assert spec.train.grad_clip.norm == 1.0 and spec.train.mixed_precision
    assert spec.transfer.freeze == ["backbone.*"]
    assert spec.export.onnx.dynamic_axes == ["batch", "seq"]
    transfer = validate({"transfer": {"init_from": "ckpt"}}).transfer
    assert (transfer.layers, transfer.freeze, transfer.strict) == (["*"], [], False)
    assert validate({"export": {"onnx": False}}).export.onnx is None
    assert validate({"export": {}}).export.onnx.opset == 18


# ------------------------------------------------------------------ bad input: one clear error

INVALID: list[tuple[str, dict[str, Any], tuple[Any, ...], list[str]]] = [
    ("unknown key in a variant", {"loss": {"type": "mse", "label_smoothing": 0.1}},
     ("loss", "label_smoothing"), ["unknown key"]),
    ("momentum on adam", {"optimizer": {"type": "adam", "momentum": 0.9}},
     ("optimizer", "momentum"), ["unknown key"]),
    ("nesterov without momentum", {"optimizer": {"type": "sgd", "nesterov": True}},
     ("optimizer", "nesterov"), ["nesterov", "momentum > 0"]),
    ("split not summing to 1",
     {"data": {"dataset": "iris", "split": {"train": 0.8, "val": 0.3, "test": 0.1}}},
     ("data", "split"), ["sum to 1", "1.2"]),
    ("two data sources", {"data": {"dataset": "iris", "csv": "iris.csv"}},
     ("data",), ["exactly one", "dataset and csv"]),
    ("no data source", {"data": {"shuffle": True}}, ("data",), ["exactly one", "got none"]),
    ("flip as yes", {"augment": {"images": {"horizontal_flip": "yes"}}},
     ("augment", "images", "horizontal_flip"), ["expected a number"]),
    ("string for a number", {"optimizer": {"type": "sgd", "lr": "fast"}},
     ("optimizer", "lr"), ["expected a number"]),
    ("unknown loss type", {"loss": {"type": "cross_entropi"}},
     ("loss", "type"), ["unknown loss", "cross_entropi", "did you mean 'cross_entropy'"]),
    ("unknown loss name", {"loss": "hubber"}, ("loss",), ["unknown loss", "did you mean 'huber'"]),
    ("grad_clip with both", {"train": {"grad_clip": {"norm": 1.0, "value": 0.5}}},
     ("train", "grad_clip"), ["exactly one", "norm and value"]),
    ("warmup with both", {"schedule": {"type": "cosine", "warmup": {"epochs": 2, "steps": 10}}},
     ("schedule", "warmup"), ["exactly one", "epochs and steps"]),
    ("warmup with neither", {"schedule": {"type": "cosine", "warmup": {"start_factor": 0.1}}},
     ("schedule", "warmup"), ["exactly one", "got none"]),
    ("optimizer without type", {"optimizer": {"lr": 0.1}}, ("optimizer",), ["missing `type`"]),
    ("optimizer of wrong kind", {"optimizer": 0.1}, ("optimizer",), ["name or a mapping"]),
    ("float epochs", {"train": {"epochs": 10.0}}, ("train", "epochs"), ["expected an integer"]),
    ("string bool", {"train": {"amp": "true"}}, ("train", "amp"), ["true or false"]),
    ("int bool", {"train": {"deterministic": 1}}, ("train", "deterministic"), ["true or false"]),
    ("unknown metric", {"train": {"metrics": ["accuracy", "acc"]}},
     ("train", "metrics", 1), ["accuracy"]),
    ("bad device", {"train": {"device": "gpu"}}, ("train", "device"), ["auto", "cuda"]),
    ("opset too high", {"export": {"onnx": {"opset": 22}}},
     ("export", "onnx", "opset"), ["at most 21"]),
    ("label smoothing above 1", {"loss": {"type": "cross_entropy", "label_smoothing": 1.5}},
     ("loss", "label_smoothing"), ["at most 1"]),
    ("betas of three", {"optimizer": {"type": "adam", "betas": [0.9, 0.99, 0.999]}},
     ("optimizer", "betas"), ["at most 2"]),
    ("error inside a per-network optimizer",
     {"optimizer": {"generator": "adam", "discriminator": {"type": "adam", "betas": "x"}}},
     ("optimizer", "discriminator", "betas"), ["expected a list"]),
    ("error inside a sequential phase",
     {"schedule": {"type": "sequential", "phases": [
         {"schedule": "constant", "epochs": 2},
         {"schedule": {"type": "step", "step_size": 3, "gama": 0.5}}]}},
     ("schedule", "phases", 1, "schedule", "gama"), ["unknown key"]),
    ("phase without epochs",
     {"schedule": {"type": "sequential", "phases": [{"schedule": "constant"},
                                                   {"schedule": "cosine"}]}},
     ("schedule", "phases", 0), ["needs `epochs`"]),
    ("plateau as a phase",
     {"schedule": {"type": "sequential", "phases": [
         {"schedule": "constant", "epochs": 2}, {"schedule": "reduce_on_plateau"}]}},
     ("schedule", "phases", 1, "schedule"), ["reduce_on_plateau"]),
    ("milestones not increasing", {"schedule": {"type": "multistep", "milestones": [30, 10]}},
     ("schedule", "milestones"), ["increase"]),
    ("cyclic bounds reversed", {"schedule": {"type": "cyclic", "base_lr": 0.1, "max_lr": 0.01}},
     ("schedule", "max_lr"), ["must exceed base_lr"]),
    ("warmup on one_cycle",
     {"schedule": {"type": "one_cycle", "max_lr": 0.1, "warmup": {"epochs": 1}}},
     ("schedule", "warmup"), ["pct_start"]),
    ("csv option on a dataset", {"data": {"dataset": "iris", "target": "species"}},
     ("data", "target"), ["applies to csv", "dataset iris"]),
    ("seq_len on a tabular dataset", {"data": {"dataset": "iris", "seq_len": 10}},
     ("data", "seq_len"), ["sequence datasets"]),
    ("unknown dataset", {"data": {"dataset": "mnist"}}, ("data", "dataset"), ["digits"]),
    ("normalize as yes", {"data": {"dataset": "digits", "normalize": "yes"}},
     ("data", "normalize"), ["true, false, auto"]),
    ("normalize stats of different lengths",
     {"data": {"dataset": "digits", "normalize": {"mean": [0.5, 0.5], "std": [0.2]}}},
     ("data", "normalize", "std"), ["mean has 2", "std 1"]),
    ("num_classes on regression", {"task": {"type": "regression", "num_classes": 3}},
     ("task", "num_classes"), ["classification tasks"]),
    ("labels disagree with num_classes",
     {"task": {"type": "classification", "num_classes": 3, "labels": ["a", "b"]}},
     ("task", "labels"), ["2 labels", "num_classes 3"]),
    ("unknown task", {"task": "clasification"}, ("task",), ["did you mean 'classification'"]),
    ("unknown task type", {"task": {"type": "gann"}}, ("task", "type"), ["'gan'"]),
    ("regularization inside the adversarial loss",
     {"loss": {"type": "cyclegan", "adversarial": {"type": "hinge",
                                                   "regularization": {"l2": 0.1}}}},
     ("loss", "adversarial", "regularization"), ["cyclegan loss itself"]),
    ("negative regularization", {"loss": {"type": "mse", "regularization": {"l2": -1}}},
     ("loss", "regularization", "l2"), ["at least 0"]),
    ("ema of 1", {"train": {"ema": 1.0}}, ("train", "ema"), ["less than 1"]),
    ("transfer without init_from", {"transfer": {"freeze": ["*"]}},
     ("transfer", "init_from"), ["required"]),
    ("empty per-network mapping", {"schedule": {}}, ("schedule",), ["empty mapping"]),
    ("export file outside the run folder", {"export": {"onnx": {"file": "../../victim.onnx"}}},
     ("export", "onnx", "file"), ["'..'", "inside the run folder", "model.onnx"]),
    ("absolute export file", {"export": {"onnx": {"file": "/tmp/victim.onnx"}}},
     ("export", "onnx", "file"), ["absolute", "inside the run folder"]),
    ("export file on a Windows drive", {"export": {"onnx": {"file": "C:\\m.onnx"}}},
     ("export", "onnx", "file"), ["absolute"]),
    ("export file over the checkpoint", {"export": {"onnx": {"file": "model.safetensors"}}},
     ("export", "onnx", "file"), ["ends in .onnx"]),
    ("export file with a newline", {"export": {"onnx": {"file": "a\nb.onnx"}}},
     ("export", "onnx", "file"), ["control"]),
    ("export file with an empty part", {"export": {"onnx": {"file": "a//b.onnx"}}},
     ("export", "onnx", "file"), ["empty part"]),
    ("csv outside the spec's folder", {"data": {"csv": "/etc/passwd", "target": "x"}},
     ("data", "csv"), ["absolute", "inside its own folder"]),
    ("npz above the spec's folder", {"data": {"npz": "data/../../x.npz"}},
     ("data", "npz"), ["'..'"]),
    ("image folder with a bidi control", {"data": {"image_folder": "img\u202egnp.x"}},
     ("data", "image_folder"), ["control"]),
    ("weights from elsewhere", {"transfer": {"init_from": "~/runs/a/model.safetensors"}},
     ("transfer", "init_from"), ["absolute"]),
    ("unknown top-level key", {"optimiser": "adam"}, ("optimiser",), ["unknown key"]),
]


@pytest.mark.parametrize(("data", "loc", "words"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_sections(data: dict[str, Any], loc: tuple[Any, ...], words: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == loc
    # what a user reads: the message plus dlspec's hint (e.g. "did you mean")
    (problem,) = problems_from_validation(caught.value, data, TrainingSections)
    shown = problem.render().lower()
    for word in words:
        assert word.lower() in shown, shown


# ------------------------------------------------------------------ schema, import cost


def test_json_schema_lists_the_string_shorthand() -> None:
    schema = TrainingSections.model_json_schema()
    text = json.dumps(schema)
    assert set(schema["properties"]) == {"task", "loss", "optimizer", "schedule", "data",
                                         "augment", "train", "transfer", "export"}
    for field in schema["properties"].values():
        assert field.get("description")
    loss = TypeAdapter(Loss).json_schema()
    enums = [alt.get("enum") for alt in loss["anyOf"]]
    assert sorted(tags(Loss)) == sorted(next(e for e in enums if e))
    assert any("discriminator" in alt for alt in loss["anyOf"])
    assert '"cross_entropy"' in json.dumps(schema["properties"]["loss"])
    assert '"classification"' in json.dumps(schema["properties"]["task"])
    assert "additionalProperties" in text


def test_every_field_has_a_description() -> None:
    schema = TrainingSections.model_json_schema()
    missing = [f"{name}.{key}" for name, model in schema["$defs"].items()
               for key, field in model.get("properties", {}).items()
               if key != "type" and not field.get("description")]
    assert not missing


def test_sections_do_not_import_torch() -> None:
    code = "import sys, dlspec.spec.sections; assert 'torch' not in sys.modules, 'torch imported'"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ------------------------------------------------------------------ paths, where files are opened


def test_resolve_inside_follows_links_and_refuses_what_leaves_the_folder(tmp_path: Path) -> None:
    from dlspec.errors import SpecError
    from dlspec.spec.paths import resolve_inside

    spec_dir, outside = tmp_path / "spec", tmp_path / "secret.csv"
    (spec_dir / "data").mkdir(parents=True)
    outside.write_text("a,b\n1,2\n")
    (spec_dir / "data" / "train.csv").write_text("a,b\n1,2\n")
    (spec_dir / "data" / "link.csv").symlink_to(outside)
    (spec_dir / "inner.csv").symlink_to(spec_dir / "data" / "train.csv")
    key = ("data", "csv")
    assert resolve_inside(spec_dir, "data/train.csv", key) == spec_dir / "data" / "train.csv"
    assert resolve_inside(spec_dir, "inner.csv", key) == spec_dir / "data" / "train.csv"
    assert resolve_inside(spec_dir, "missing.csv", key) == spec_dir / "missing.csv"
    for written, words in (("data/link.csv", "symbolic link"), ("../secret.csv", "'..'"),
                           (str(outside), "absolute")):
        with pytest.raises(SpecError, match=words) as caught:
            resolve_inside(spec_dir, written, key)
        assert caught.value.problems[0].path == key


def test_data_files_are_opened_only_inside_the_spec_folder(tmp_path: Path) -> None:
    from dlspec.data.files import resolve
    from dlspec.errors import SpecError

    (tmp_path / "spec").mkdir()
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    (tmp_path / "spec" / "train.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(SpecError, match="outside the spec's folder") as caught:
        resolve(tmp_path / "spec", "train.csv", "csv")
    assert caught.value.problems[0].path == ("data", "csv")


def test_a_spec_that_writes_outside_its_run_is_refused_by_check(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("dlspec: 1\nname: t\ninputs:\n  x: {shape: [4]}\nnetwork:\n  - linear: 2\n"
                    "export: {onnx: {file: ../victim.onnx}}\n")
    result = subprocess.run([sys.executable, "-m", "dlspec", "export", str(spec)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"{spec}:7:23: export.onnx.file: the path '../victim.onnx'" in result.stderr
    assert not (tmp_path.parent / "victim.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]  # nothing written at all
