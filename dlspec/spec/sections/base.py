"""Shared machinery of the training sections: the `Section` base, one-error validation (`fail`),
and the three kinds of flexible values (`Variants`, `PerNetwork`, `Shorthand`) described in
the package's docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError, core_schema

# --------------------------------------------------------------------------- helpers


def fail(message: str, *loc: str | int, value: Any = None, kind: str = "spec",
         context: dict[str, Any] | None = None) -> NoReturn:
    """Raise one validation error at `loc` (relative to the value being validated)."""
    # pydantic fills `{name}` in a template from the context and never un-escapes `{{`, so
    # the message travels as a context value: braces in it (a user's text) print as written
    context = {**(context or {}), "dlspec_message": message}
    error = {"type": PydanticCustomError(kind, "{dlspec_message}", context),
             "loc": loc, "input": value}
    raise ValidationError.from_exception_data("dlspec", [error])  # type: ignore[list-item]


def _unknown(what: str, name: object, names: list[str], *loc: str) -> NoReturn:
    """An unknown variant name; dlspec.spec.validation adds the "did you mean"."""
    fail(f"unknown {what} '{name}'", *loc, value=name, kind="unknown_choice",
         context={"choices": names})


@dataclass(frozen=True, eq=False)
class Shorthand:
    """Also accept a short form: `expand` turns it into the full form before validation, and
    the JSON Schema lists `schema` beside the full form's."""

    expand: Callable[[Any], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_before_validator_function(self.expand, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [self.schema, handler(schema)]}


def _tag(model: type[BaseModel]) -> str:
    return get_args(model.model_fields["type"].annotation)[0]


@dataclass(frozen=True)
class Variants:
    """Validation of a discriminated union of `Section`s on `type`, `NAME` meaning `{type: NAME}`.

    The union (with `Field(discriminator="type")`) gives the JSON Schema; validation picks the
    variant by its tag and validates with that class alone, keeping error locations clean.
    """

    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        by_tag = {_tag(m): m for m in get_args(source)}

        def validate(value: Any, _handler: Any, info: Any) -> Any:
            if isinstance(value, tuple(by_tag.values())):
                return value
            names = list(by_tag)
            if isinstance(value, str):
                if value not in by_tag:
                    _unknown(self.what, value, names)
                value = {"type": value}
            if not isinstance(value, dict):
                fail(f"expected the {self.what}'s name or a mapping with `type`, "
                     f"got {type(value).__name__}", value=value, kind="variant_type")
            if "type" not in value:
                fail(f"missing `type`: which {self.what}, one of {', '.join(names)}",
                     value=value, kind="missing_type")
            tag = value["type"]
            if not isinstance(tag, str) or tag not in by_tag:
                _unknown(self.what, tag, names, "type")
            return by_tag[tag].model_validate(value, context=info.context)

        return core_schema.with_info_wrap_validator_function(
            validate, handler(source), metadata={"dlspec_tags": list(by_tag)})

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        tags = list(schema["metadata"]["dlspec_tags"])
        short = {"type": "string", "enum": tags, "description": "NAME: short for {type: NAME}"}
        return {"anyOf": [short, handler(schema)]}


@dataclass(frozen=True)
class PerNetwork:
    """One variant, or a mapping name -> variant: per network (multi-network tasks, e.g. GANs)
    or, with `by="output"`, per output of a network with several.

    A mapping without `type` whose values are all names or mappings is read per name;
    anything else as one variant, so `{lr: 0.1}` reports the missing `type`.
    """

    what: str
    by: str = "network"

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        single_type, mapping_type = get_args(source)
        single, mapping = TypeAdapter(single_type), TypeAdapter(mapping_type)

        def validate(value: Any, _handler: Any, info: Any) -> Any:
            per_network = (
                isinstance(value, dict)
                and "type" not in value
                and all(isinstance(v, str | dict | BaseModel) for v in value.values())
            )
            if per_network and not value:
                fail(f"expected one {self.what} or a mapping {self.by} name -> {self.what}, "
                     "got an empty mapping", value=value)
            adapter = mapping if per_network else single
            return adapter.validate_python(value, context=info.context)

        return core_schema.with_info_wrap_validator_function(validate, handler(source))


@dataclass(frozen=True)
class ByName:
    """A list, or a mapping name -> list (e.g. metrics per output), told apart by being a
    mapping, so an error is the one form's alone."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        listed, mapping = (TypeAdapter(t) for t in get_args(source))

        def validate(value: Any, _handler: Any, info: Any) -> Any:
            adapter = mapping if isinstance(value, dict) else listed
            return adapter.validate_python(value, context=info.context, strict=True)

        return core_schema.with_info_wrap_validator_function(validate, handler(source))


Fraction = Annotated[float, Field(ge=0, le=1)]
Patterns = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _exactly_one(model: BaseModel, keys: tuple[str, ...], what: str) -> None:
    """Check that exactly one of `keys` is set (not None); the error names what was found."""
    found = [k for k in keys if getattr(model, k) is not None]
    if len(found) != 1:
        given = f"got {' and '.join(found)}" if found else "got none"
        fail(f"{what} needs exactly one of {', '.join(keys)}; {given}", value=found)
