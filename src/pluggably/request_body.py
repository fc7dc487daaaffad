"""The base of the native API's request bodies: ``null`` means "not set".

Existing clients (the PlugAI Python SDK serializes its pydantic models with every
optional field present, the Dart app likewise) send ``"stream": null``,
``"parameters": null``, ``"options": {"allow_large": null}``. For a field with a
default, ``null`` therefore stands for the default, never for a value of its own;
a required field sent as ``null`` still fails validation, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


# Free-form parameters (validated later against the model's parameter schema): a
# null value is the parameter left unset, dropped before that schema sees it.
Parameters = Annotated[dict[str, Any], BeforeValidator(_without_nulls)]
