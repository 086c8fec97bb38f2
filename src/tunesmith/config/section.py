"""`Section`: the base of every config section (unknown fields rejected, assignments validated, no yes/no value
read as a number)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML reads true/yes/on as a bool, which pydantic would take as 1 for a number (`batch_size: true`)."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        if isinstance(value, bool) and _numeric(field.annotation):
            raise PydanticCustomError("number_not_bool", "Input should be a number, not true/false (or yes/no, on/off)")
        values = _dict_values(field.annotation) if isinstance(value, dict) else None
        if values is not None and _numeric(values) and any(isinstance(v, bool) for v in value.values()):
            raise PydanticCustomError("number_not_bool", "Input should map to numbers, not true/false")
        return value


def _members(annotation: Any) -> list:
    """`annotation`'s alternatives, without `Annotated[...]` and `None`."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a) if m is not type(None)]
    return [annotation]


def _numeric(annotation: Any) -> bool:
    """Whether a field takes a number (int or float; no alternative takes a bool)."""
    members = _members(annotation)
    return bool(members) and bool not in members and any(m in (int, float) for m in members)


def _dict_values(annotation: Any) -> Any:
    """The value type of a field's mapping alternative (`{label: times}`), else None."""
    for m in _members(annotation):
        if typing.get_origin(m) is dict and len(typing.get_args(m)) == 2:
            return typing.get_args(m)[1]
    return None


def union_tag(kind: str) -> str:
    """The tag of one member of a tagged union (`<endpoint>`): pydantic puts it in an error's path, and
    `tunesmith.config.problems` leaves it out of the path it shows."""
    return f"<{kind}>"
