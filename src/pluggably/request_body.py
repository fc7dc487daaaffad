"""The base of the native API's request bodies: ``null`` means "not set".

Existing clients (the PlugAI Python SDK serializes its pydantic models with every
optional field present, the Dart app likewise) send ``"stream": null``,
``"parameters": null``, ``"options": {"allow_large": null}``. For a field with a
default, ``null`` therefore stands for the default, never for a value of its own;
a required field sent as ``null`` still fails validation, naming the field.

JSON has no NaN or Infinity, but Python's JSON reader takes ``NaN``, ``Infinity``
and ``-Infinity`` (and reads ``1e400`` as infinity): numbers are refused unless finite,
in typed fields and in fields that take any JSON value alike, naming the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # The names (and aliases) of the fields with a default: a null for one is dropped.
    _defaulted: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        names = set()
        for name, info in cls.model_fields.items():
            if not info.is_required():
                names |= {name, info.alias or name}
        cls._defaulted = frozenset(names)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            return {k: v for k, v in data.items() if v is not None or k not in cls._defaulted}
        return data


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def finite(value: Any) -> Any:
    """``value``, when every number in it is finite; else pydantic's own error for a
    float field that refuses NaN and Infinity (``finite_number``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    if isinstance(value, dict):
        for item in value.values():
            finite(item)
    elif isinstance(value, list):
        for item in value:
            finite(item)
    return value


# Any JSON value, its numbers finite.
AnyJson = Annotated[Any, AfterValidator(finite)]

# Free-form parameters (validated later against the model's parameter schema): a
# null value is the parameter left unset, dropped before that schema sees it.
Parameters = Annotated[dict[str, AnyJson], BeforeValidator(_without_nulls)]
