"""The body of a Gemini ``generateContent`` call: the conversation as user/model turns
(tool calls as ``functionCall`` parts, tool results as ``functionResponse`` parts), the
system instruction, the declared functions and how the model may call them, and the
generation config (sampling, JSON output, thinking)."""

from __future__ import annotations

import json
import re
from typing import Any

from pluggably.errors import InvalidParameter
from pluggably.messages import Features, Message, ReasoningSpec, arguments_object, signature_for
from pluggably.providers.base import ProviderCall
from pluggably.stops import as_list

GOOGLE = "google"  # the mark on Gemini's thought signatures (messages.signed)

MAX_STOPS = 5
# Ids the gateway made up for calls Gemini sent without one (see google_reading):
# Gemini never issued them, so they are not sent back.
GENERATED_ID = re.compile(r"^call_\d+$")
# Gemini 1.x and 2.0 models (and the Gemma models the API serves) do not think and
# answer a thinkingConfig with a 400.
_THINKS = re.compile(r"^(?:models/)?gemini-(?!1\.|2\.0-)")
# Thinking budgets for an effort without max_tokens (the ones LiteLLM maps them to).
_EFFORT_BUDGET = {"low": 1024, "medium": 2048, "high": 4096}
_CHOICE_MODE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}


def thinks(model: str) -> bool:
    """Whether ``model`` takes a thinkingConfig."""
    return _THINKS.match(model) is not None


# the conversation
def _parts(message: Message) -> list[dict[str, Any]]:
    # Google's vision guidance puts images before the text that talks about them.
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": img.mime, "data": img.data_b64}} for img in message.images
    ]
    if message.text:
        parts.append({"text": message.text})
    return parts


def _arguments(message: Message, index: int) -> dict[str, Any]:
    call = message.tool_calls[index]
    args = arguments_object(call.arguments)
    if args is None:
        raise InvalidParameter(
            f"The arguments of tool call '{call.id}' ({call.name}) are not a JSON object; "
            "Gemini takes a function call's arguments only as an object."
        )
    return args


# Gemini 3 refuses a function call of the current turn without a thought signature; a
# call made elsewhere (another vendor, a client that cannot keep signatures) carries
# the value Google documents for exactly that case.
_NEEDS_SIGNATURE = re.compile(r"^(?:models/)?gemini-3")
UNSIGNED = "skip_thought_signature_validator"


def _model_parts(message: Message, *, signed_calls: bool = False) -> list[dict[str, Any]]:
    """An assistant turn: its text, then its calls. Gemini's thought signature rides on
    the first call (or on the text when there is none), where Gemini put it;
    ``signed_calls``: the model wants one on every turn's first call."""
    parts = _parts(message)
    for index, call in enumerate(message.tool_calls):
        function: dict[str, Any] = {"name": call.name, "args": _arguments(message, index)}
        if not GENERATED_ID.match(call.id):
            function["id"] = call.id
        parts.append({"functionCall": function})
    signature = signature_for(GOOGLE, message.reasoning_signature)
    if signed_calls and not signature and message.tool_calls:
        signature = UNSIGNED
    if signature and parts:
        calls = [p for p in parts if "functionCall" in p]
        (calls or parts)[0]["thoughtSignature"] = signature
    return parts


def _result(text: str) -> Any:
    """A tool's result as Gemini's response object holds it: JSON stays structured."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict | list) else text


def _response_part(message: Message, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    if call_id not in names:
        raise InvalidParameter(
            f"The tool message for call '{call_id}' answers no tool call of an earlier "
            "assistant message; Gemini needs the name of the function it answers."
        )
    result = {"result": _result(message.text)}
    response: dict[str, Any] = {"name": names[call_id], "response": result}
    if not GENERATED_ID.match(call_id):
        response["id"] = call_id
    return {"functionResponse": response}


def contents(messages: list[Message], model: str = "") -> list[dict[str, Any]]:
    """User/model turns; Gemini wants turns to alternate, so neighbours of one role are
    merged into one turn (consecutive tool results thus share one user turn)."""
    signed_calls = _NEEDS_SIGNATURE.match(model) is not None
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, latest call wins
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role, parts = "user", [_response_part(message, names)]
        elif message.role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            role, parts = "model", _model_parts(message, signed_calls=signed_calls)
        else:
            role, parts = "user", _parts(message)
        if not parts:
            continue  # an empty turn is a 400 upstream and says nothing anyway
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


# tools
def _tools(features: Features) -> list[dict[str, Any]]:
    declarations = []
    for tool in features.tools:
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        # parametersJsonSchema takes full JSON Schema ($defs, $ref, anyOf, …) as
        # clients write it; `parameters` takes only Google's OpenAPI subset.
        declaration["parametersJsonSchema"] = tool.parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(features: Features) -> dict[str, Any]:
    choice = features.tool_choice
    config: dict[str, Any] = {"mode": _CHOICE_MODE[choice.mode]}
    if choice.mode == "function" and choice.name:
        config["allowedFunctionNames"] = [choice.name]
    return {"functionCallingConfig": config}


# generation config
def _thinking(spec: ReasoningSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"includeThoughts": True}
    if spec.max_tokens is not None:
        config["thinkingBudget"] = spec.max_tokens
    elif spec.effort is not None:
        config["thinkingBudget"] = _EFFORT_BUDGET[spec.effort]
    return config


def _generation_config(call: ProviderCall) -> dict[str, Any]:
    parameters, features = call.parameters, call.features
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("max_tokens", "maxOutputTokens"),
        ("seed", "seed"),
    ):
        if parameters.get(ours) is not None:
            config[theirs] = parameters[ours]
    if stops := as_list(parameters.get("stop")):
        # Gemini takes at most 5 ("the number of stop_sequences must not exceed 5"); the
        # gateway cuts the answer at the others itself.
        config["stopSequences"] = stops[:MAX_STOPS]
    if features.json_output:
        config["responseMimeType"] = "application/json"
    if (schema := features.json_schema) is not None:
        # Full JSON Schema, unlike responseSchema's OpenAPI subset.
        config["responseJsonSchema"] = schema
    if features.reasoning is not None and thinks(call.model):
        config["thinkingConfig"] = _thinking(features.reasoning)
    return config


def generate_body(call: ProviderCall) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": contents(call.messages, call.model)}
    system = [{"text": m.text} for m in call.messages if m.role == "system" and m.text]
    if system:
        body["systemInstruction"] = {"parts": system}
    if call.features.tools:
        body["tools"] = _tools(call.features)
        body["toolConfig"] = _tool_config(call.features)
    config = _generation_config(call)
    if config:
        body["generationConfig"] = config
    return body
