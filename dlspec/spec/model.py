"""The spec format as pydantic models: what `dlspec check --no-shapes` validates.

Layer entries are kept as plain data here and validated by `expand`, which knows
the layer registry and block parameters; the JSON Schema (dlspec.spec.schema)
describes them for editors all the same.
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from dlspec.spec.sections import TrainingSections, fail

FORMAT_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Attributes of torch.nn.Module and torch.fx.GraphModule (tests/test_compile.py keeps this list
# complete): a layer named like one would shadow it. `self` and fx's own globals (`torch`,
# `device` ...) would shadow what the generated forward() reads when they name an input.
RESERVED_NAMES = frozenset({
    "T_destination", "add_module", "add_submodule", "apply", "bfloat16", "buffers",
    "call_super_init", "children", "code", "compile", "cpu", "cuda",
    "delete_all_unused_submodules", "delete_submodule", "dlspec_outputs", "double",
    "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
    "get_parameter", "get_submodule", "graph", "half", "ipu", "load_state_dict", "meta",
    "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters",
    "parameters", "print_readable", "recompile", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "shape_env", "share_memory", "state_dict", "to",
    "to_empty", "to_folder", "train", "training", "type", "xpu", "zero_grad",
    "self", "torch", "device", "inf", "nan", "NoneType", "fx_pytree", "pytree",
})


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a layer, input, block or network, or None when it can."""
    if not re.match(NAME_PATTERN, name):
        return (f"{name[:80]!r} is not a valid name: use letters, digits and underscores, "
                "not starting with a digit")
    if name.startswith("_"):
        return (f"{name!r} is reserved: names starting with '_' belong to PyTorch's internals "
                "(_modules, __init__ ...); start it with a letter")
    if keyword.iskeyword(name) or name in RESERVED_NAMES:
        what = ("a Python keyword" if keyword.iskeyword(name) else
                "a name the compiled module or its forward() uses")
        return f"{name!r} is reserved ({what}); choose another name, e.g. {name}_1"
    return None


class Strict(BaseModel):
    """Base of the spec's models: unknown keys are errors and types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _checked_name(value: Any) -> Any:
    if isinstance(value, str) and (problem := name_problem(value)):
        raise ValueError(problem)
    return value


Name = Annotated[str, BeforeValidator(_checked_name),
                 WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})]
# Layer entries are validated by expand; dlspec.spec.schema replaces this marker with $ref Layer.
LAYER_MARKER = "x-dlspec-layer"
LayerList = Annotated[list[Any], Field(min_length=1),
                      WithJsonSchema({"type": "array", "minItems": 1,
                                      "items": {LAYER_MARKER: True}})]
# Modules are built in float32; other float precisions are a training setting (train.precision).
Dtype = Literal["float32", "int64", "int32", "bool"]
MAX_DIMENSION = 1 << 31
MAX_VARIANTS = 256
REFERENCE_PATTERN = r"^\$(\(.*\)|[A-Za-z_][A-Za-z0-9_]*)$"  # $name or $(expression)


class InputSpec(Strict):
    """One input tensor of a network, per sample (the batch axis is implicit)."""

    shape: list[Annotated[int, Field(gt=0, le=MAX_DIMENSION), WithJsonSchema({"anyOf": [
        {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_DIMENSION},
        {"type": "string", "pattern": REFERENCE_PATTERN,
         "description": "a spec parameter: $name or $(expression)"}]})]] = Field(
        description="per-sample shape, e.g. [1, 28, 28]")
    dtype: Dtype = Field("float32", description="int64 for token ids read by an embedding")
    distribution: Literal["normal", "uniform"] | None = Field(
        None, description="a GAN generator's latent input: drawn from N(0, 1) (normal, the "
        "default) or U(-1, 1) (uniform) while training")


def is_sequence(shape: list[int] | tuple[int, ...], dtype: str) -> bool:
    """Whether an input's first per-sample axis is a sequence: token ids (steps,), or
    (steps, features) values. Export may leave that axis dynamic."""
    if dtype in ("int64", "int32"):
        return len(shape) == 1
    return dtype == "float32" and len(shape) == 2


# block parameter types → the Python types a value may have
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,),
    "any": (object,),
}
PARAM_TYPE_WORDS = {"int": "an int", "float": "a number", "bool": "true or false",
                    "str": "a string", "list": "a list", "any": "anything"}


def param_type_matches(kind: str, value: Any) -> bool:
    """Whether a block parameter value has the declared type (bool is not an int)."""
    return kind == "any" or type(value) in PARAM_TYPES[kind]


class ParamDecl(Strict):
    """A block parameter: its type and, if optional, its default."""

    type: Literal["int", "float", "bool", "str", "list", "any"] = "any"
    default: Any = Field(None, description="makes the parameter optional")
    _required: bool = PrivateAttr(True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_has_the_type(self) -> ParamDecl:
        self._required = "default" not in self.model_fields_set
        if not self._required and not param_type_matches(self.type, self.default):
            fail(f"default {self.default!r} is not {PARAM_TYPE_WORDS[self.type]}", "default",
                 value=self.default)
        return self

    @property
    def required(self) -> bool:
        """True when a use of the block must give this parameter."""
        return self._required


ParamDeclField = Annotated[ParamDecl, WithJsonSchema({"anyOf": [
    {"enum": list(PARAM_TYPES), "description": "a required parameter of this type"},
    {"type": "object", "additionalProperties": False,
     "properties": {"type": {"enum": list(PARAM_TYPES)}, "default": {}}},
]})]


class BlockSpec(Strict):
    """A parameterised sub-network, used in `network:` like a layer kind."""

    params: dict[Name, ParamDeclField] = Field(default_factory=dict,
                                               description="name: type, or {type, default}")
    inputs: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = Field(
        None, description="names of the block's inputs when it reads several (a U-Net "
        "decoder stage's x and skip): a use lists its sources with `from: [a, b]`")
    layers: LayerList
    description: str | None = None

    @model_validator(mode="after")
    def _inputs_are_distinct(self) -> BlockSpec:
        for i, name in enumerate(self.inputs or []):
            if name in self.params:
                fail(f"{name!r} names both an input and a parameter of the block", "inputs", i,
                     value=name)
            if name in (self.inputs or [])[:i]:
                fail(f"input {name!r} is listed twice", "inputs", i, value=name)
        return self


def _outputs(value: Any) -> Any:
    """`outputs:` as {output name: layer name}, from a name, a list of names or a mapping."""
    if isinstance(value, str):
        return {value: value}
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                fail(f"outputs lists layer names; found {item!r}", i, value=item)
        return {item: item for item in value}
    if isinstance(value, dict):
        for key, item in value.items():
            if problem := name_problem(key):
                fail(problem, key, value=key)
            if not isinstance(item, str):
                fail(f"output {key!r} should name a layer; found {item!r}", key, value=item)
        return value
    fail("outputs is a layer name, a list of names, or a mapping output name → layer name",
         value=value)


Outputs = Annotated[dict[str, str], BeforeValidator(_outputs), WithJsonSchema({"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"type": "string"}},
    {"type": "object", "additionalProperties": {"type": "string"}}]})]


def _format_version(value: Any) -> Any:
    if type(value) is not int or value != FORMAT_VERSION:
        raise ValueError(f"unsupported format version: this dlspec reads "
                         f"`dlspec: {FORMAT_VERSION}`; found {value!r}")
    return value


FormatVersion = Annotated[int, BeforeValidator(_format_version),
                          WithJsonSchema({"const": FORMAT_VERSION})]


ParamValue = int | float | bool | str | list[Any]


class NetworkSpec(Strict):
    """One network of a multi-network spec (a GAN's generator, discriminator ...)."""

    inputs: dict[Name, InputSpec] = Field(min_length=1)
    network: LayerList
    outputs: Outputs | None = Field(None, description="default: the last layer")


# what a section present but empty (`network:` and nothing under it) should hold
_EMPTY_SECTIONS = {
    "inputs": "name each input and give its shape, e.g. image: {shape: [1, 28, 28]}",
    "network": "list at least one layer",
    "networks": "give each network its inputs and layers",
}


class NetworkPart(Strict):
    """The part of a spec that describes networks (everything but the training sections)."""

    dlspec: FormatVersion = Field(description="format version of this file")
    name: Name = Field(description="the model's name: run folders and files are named by it")
    description: str | None = None
    inputs: dict[Name, InputSpec] | None = Field(None, min_length=1)
    network: LayerList | None = None
    outputs: Outputs | None = Field(None, description="default: the last layer")
    networks: dict[Name, NetworkSpec] | None = Field(None, min_length=1)
    blocks: dict[Name, BlockSpec] = Field(default_factory=dict)
    params: dict[Name, ParamValue] | None = Field(
        None, description="spec parameters, used as $name or $(expression) in inputs and "
        "network; variants set them")

    @model_validator(mode="after")
    def _one_way_to_say_the_network(self) -> NetworkPart:
        for key, what in _EMPTY_SECTIONS.items():
            if key in self.model_fields_set and getattr(self, key) is None:  # `network:` alone
                fail(f"{key} is empty", key, kind="empty_section", context={"hint": what})
        if self.networks is not None:
            extra = [k for k in ("inputs", "network", "outputs") if getattr(self, k) is not None]
            if extra:
                fail("a spec with `networks:` declares inputs and layers inside each "
                     "network, not at the top level", extra[0], kind="misplaced_key")
        elif self.network is None:
            fail("a spec needs `network:` (a list of layers) or `networks:`")
        elif self.inputs is None:
            fail("`inputs:` is missing", kind="empty_section",  # the hint keeps its braces
                 context={"hint": "name each input and give its shape, e.g. "
                          "inputs: {image: {shape: [1, 28, 28]}}"})
        return self

    def network_specs(self) -> dict[str, NetworkSpec]:
        """Every network by name; a single `network:` is named after the spec."""
        if self.networks is not None:
            return dict(self.networks)
        assert self.inputs is not None and self.network is not None  # checked above
        return {self.name: NetworkSpec(inputs=self.inputs, network=self.network,
                                       outputs=self.outputs)}


class Spec(NetworkPart, TrainingSections):
    """A whole dlspec document: its networks and how to train and export them."""

    _document: Any = PrivateAttr(None)
    # bounded: `check` validates the whole spec once per variant
    variants: dict[Name, dict[str, Any]] | None = Field(
        None, max_length=MAX_VARIANTS, description="named variants (select with --variant): "
        "each sets params and overrides sections, e.g. a small version that trains here on "
        "built-in data")

    @property
    def document(self) -> Any:
        """The loaded YAML Document (positions), when the spec came from a file."""
        return self._document

    @model_validator(mode="after")
    def _sequence_axis_to_export(self) -> Spec:
        """`export.onnx.dynamic_axes` fits the inputs it names (dlspec.spec.sections.axes)."""
        from dlspec.spec.sections import AxisProblem, InputShape, resolve_axes

        onnx = self.export.onnx if self.export is not None else None
        if onnx is None or not onnx.dynamic_axes:
            return self
        networks = [{name: InputShape(tuple(i.shape), is_sequence(i.shape, i.dtype))
                     for name, i in net.inputs.items()} for net in self.network_specs().values()]
        everywhere = {name: info for inputs in networks for name, info in inputs.items()}
        try:
            if not any(i.sequence for i in everywhere.values()):  # `seq`: no sequence at all
                resolve_axes([a for a in onnx.dynamic_axes if a == "seq"], everywhere)
            for inputs in networks:
                resolve_axes(onnx.dynamic_axes, inputs, set(everywhere) - set(inputs))
        except AxisProblem as problem:
            if problem.choices is not None:  # an unknown input: "did you mean" from choices
                fail(problem.message, "export", "onnx", "dynamic_axes", *problem.loc,
                     value=problem.loc[-1], kind="unknown_choice",
                     context={"choices": sorted(everywhere)})
            # pydantic errors carry no hint here: the advice goes into the message
            fail(problem.message + (f"; {problem.hint}" if problem.hint else ""), "export",
                 "onnx", "dynamic_axes", *problem.loc, value=onnx.dynamic_axes)
        return self
