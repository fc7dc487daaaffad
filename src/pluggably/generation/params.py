"""Parameters checked against the target model's JSON Schema: 422 naming the field."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from pluggably.errors import ValidationFailed
from pluggably.registry.param_schemas import default_schema


def validate_default(parameters: dict[str, Any], label: str, modality: str) -> dict[str, Any]:
    """``validate_parameters`` against the default schema of a provider model, whose
    validator is built once per (model, modality) rather than on every request."""
    return _check(parameters, _default_validator(label, modality))


def validate_parameters(parameters: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The parameters with schema defaults left out (the upstream has its own), or a
    422 listing every offending field."""
    return _check(parameters, _validator(json.dumps(schema, sort_keys=True)))


def _check(parameters: dict[str, Any], validator: Draft202012Validator) -> dict[str, Any]:
    problems = sorted(validator.iter_errors(parameters), key=lambda e: list(e.path))
    if not problems:
        return dict(parameters)
    details = []
    for problem in problems:
        field = list(problem.path) or _extra_field(problem.message)
        details.append(
            {
                "loc": ["body", "parameters", *field],
                "msg": problem.message[:300],
                "type": str(problem.validator),
            }
        )
    names = ", ".join(".".join(str(p) for p in d["loc"][2:]) or "parameters" for d in details[:5])
    raise ValidationFailed(
        f"Invalid parameters for this model: {names}. See GET /v1/schema?model=<id>.",
        details=details,
    )


@functools.lru_cache(maxsize=512)
def _default_validator(label: str, modality: str) -> Draft202012Validator:
    return Draft202012Validator(default_schema(label, modality))


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """Compiled once per distinct schema (most models share the default ones)."""
    return Draft202012Validator(json.loads(schema_json))


def _extra_field(message: str) -> list[str]:
    # "Additional properties are not allowed ('foo' was unexpected)"
    start, end = message.find("'"), message.rfind("'")
    return [message[start + 1 : end]] if 0 <= start < end else []
