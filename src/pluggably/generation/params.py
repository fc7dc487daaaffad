"""Parameters checked against the target model's JSON Schema: 422 naming the field."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from pluggably.errors import ValidationFailed
from pluggably.generation.context import known_window
from pluggably.registry.param_schemas import default_schema


def validate_default(parameters: dict[str, Any], label: str, modality: str) -> dict[str, Any]:
    """``validate_parameters`` against the default schema of a provider model (its
    ``max_tokens`` bounded by the model's window where the family is known), whose
    validator is built once per (model, modality) rather than on every request."""
    return _check(parameters, _default_validator(label, modality))


def validate_parameters(parameters: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The parameters with schema defaults left out (the upstream has its own), or a
    422 listing every offending field."""
    return _check(parameters, _validator(json.dumps(schema, sort_keys=True)))


def _check(parameters: dict[str, Any], validator: Draft202012Validator) -> dict[str, Any]:
    # NaN passes every JSON Schema bound: the request bodies refuse non-finite numbers
    # before parameters get here (request_body.AnyJson).
    problems = sorted(validator.iter_errors(parameters), key=lambda e: list(e.path))
    if not problems:
        return dict(parameters)
    details = []
    for found in problems:
        problem = _specific(found)
        field = list(problem.absolute_path) or _extra_field(problem.message)
        details.append(
            {
                "loc": ["body", "parameters", *field],
                "msg": _explain(problem),
                "type": str(problem.validator),
            }
        )
    said = "; ".join(
        f"{'.'.join(str(p) for p in d['loc'][2:]) or 'parameters'}: {d['msg']}" for d in details[:5]
    )
    raise ValidationFailed(
        f"Invalid parameters for this model: {said}. See GET /v1/schema?model=<id>.",
        details=details,
    )


def _specific(problem: ValidationError) -> ValidationError:
    """For a value that fits none of ``anyOf``'s forms (``stop``: a string or a list),
    the finding of the form it was meant as (a list too long), not "not valid under any
    of the given schemas"."""
    if problem.validator != "anyOf" or not problem.context:
        return problem
    meant = [e for e in problem.context if e.validator != "type"]
    return meant[0] if meant else problem


def _explain(problem: ValidationError) -> str:
    """The finding in words that name the limit (jsonschema's own say "is too long")."""
    value, limit = problem.instance, problem.validator_value
    size = len(value) if isinstance(value, str | list | dict) else 0
    match problem.validator:
        case "maxItems":
            return f"at most {limit} items are accepted; got {size}"
        case "minItems":
            return f"at least {limit} items are needed; got {size}"
        case "maxLength":
            return f"at most {limit} characters are accepted; got {size}"
        case "minLength":
            return "must not be empty" if limit == 1 else f"at least {limit} characters are needed"
        case "anyOf" if problem.context:
            # The alternatives' own types ([i, "type"]), not those of their items.
            kinds = list(
                dict.fromkeys(
                    str(e.validator_value)
                    for e in problem.context
                    if e.validator == "type" and len(e.relative_schema_path) == 2
                )
            )
            # An alternative of the right type whose inside is wrong says where.
            inner = [e for e in problem.context if len(e.relative_schema_path) > 2]
            if inner and inner[0].relative_path:
                where = "".join(f"[{p}]" for p in inner[0].relative_path)
                return f"{where}: {inner[0].message[:200]}"
            if kinds:
                return "must be " + " or ".join(f"{_article(k)} {k}" for k in kinds)
    return problem.message[:300]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@functools.lru_cache(maxsize=512)
def _default_validator(label: str, modality: str) -> Draft202012Validator:
    _provider, _, model = label.partition(":")
    return Draft202012Validator(default_schema(label, modality, known_window(model or label)))


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """Compiled once per distinct schema (most models share the default ones)."""
    return Draft202012Validator(json.loads(schema_json))


def _extra_field(message: str) -> list[str]:
    # "Additional properties are not allowed ('foo' was unexpected)"
    start, end = message.find("'"), message.rfind("'")
    return [message[start + 1 : end]] if 0 <= start < end else []
