"""Turning the request's input into the provider-neutral conversation."""

from __future__ import annotations

import base64
import binascii
import re

from pluggably.errors import (
    FeatureNotSupported,
    InvalidParameter,
    PayloadTooLarge,
    ValidationFailed,
)
from pluggably.generation.schemas import ChatMessage, GenerateRequest, NamedToolChoice
from pluggably.messages import (
    NO_FEATURES,
    Features,
    ImageInput,
    Message,
    ReasoningSpec,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
)

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,(?P<data>.*)$", re.S)
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def decode_image(value: str, index: int) -> ImageInput:
    if value.startswith(("http://", "https://")):
        raise FeatureNotSupported(
            f"input.images[{index}] is a URL; send the image as base64 or a data: URL."
        )
    match = _DATA_URL.match(value)
    payload = match.group("data") if match else value
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(f"input.images[{index}] is not valid base64.") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(
            f"input.images[{index}] is {len(raw) // 1024} KiB; the limit is "
            f"{MAX_IMAGE_BYTES // 1024 // 1024} MiB."
        )
    mime = next((m for magic, m in _MAGIC.items() if raw.startswith(magic)), None)
    if mime is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None:
        raise InvalidParameter(f"input.images[{index}] is not a PNG, JPEG, GIF or WebP image.")
    return ImageInput(mime=mime, data_b64=base64.b64encode(raw).decode())


def conversation(body: GenerateRequest) -> list[Message]:
    """System prompt, then the history or the prompt; images ride on the last user turn."""
    messages: list[Message] = []
    if body.system_prompt:
        messages.append(Message("system", body.system_prompt))
    if body.input.messages:
        messages += [message_of(m) for m in body.input.messages]
    elif body.input.prompt is not None:
        messages.append(Message("user", body.input.prompt))
    if not any(m.role == "user" for m in messages):
        raise InvalidParameter("Give input.prompt or at least one user message in input.messages.")
    images = tuple(decode_image(v, i) for i, v in enumerate(body.input.images or []))
    if images:
        last = max(i for i, m in enumerate(messages) if m.role == "user")
        messages[last] = Message("user", messages[last].text, images)
    return messages


def embeds(body: GenerateRequest) -> bool:
    """The request asks for embeddings by itself (its modality, or texts to embed);
    a request may also be one because its model embeds."""
    return body.modality == "embedding" or body.input.texts is not None


def texts(body: GenerateRequest) -> list[str]:
    """What an embedding request embeds: ``input.texts``, or ``input.prompt`` as one."""
    if body.input.texts is not None:
        return list(body.input.texts)
    if body.input.prompt:
        return [body.input.prompt]
    raise ValidationFailed(
        "Embeddings take input.texts (or input.prompt for one text), not messages.",
        details=[
            {
                "loc": ["body", "input", "texts"],
                "msg": "the texts to embed are missing",
                "type": "missing",
            }
        ],
    )


def not_a_turn() -> ValidationFailed:
    """Sessions hold conversations: an embedding request is never one of their turns."""
    return ValidationFailed(
        "Embeddings are not conversation turns: send them without session_id.",
        details=[{"loc": ["body", "session_id"], "msg": "not for embeddings", "type": "value"}],
    )


def message_of(turn: ChatMessage) -> Message:
    return Message(
        turn.role,
        turn.content or "",
        tool_calls=tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in turn.tool_calls or []
        ),
        tool_call_id=turn.tool_call_id,
        reasoning=turn.reasoning,
        reasoning_signature=turn.reasoning_signature,
    )


def features(body: GenerateRequest) -> Features:
    """What the request asks beyond the conversation; ``parameters.format: json`` is
    an alias of ``response_format: {type: json_object}``."""
    fmt = body.response_format
    response_format = None
    if fmt is not None and fmt.type != "text":
        spec = fmt.json_schema if fmt.type == "json_schema" else None
        response_format = ResponseFormat(
            type=fmt.type,
            name=spec.name if spec else None,
            schema=spec.schema_ if spec else None,
            strict=spec.strict if spec else None,
            description=spec.description if spec else None,
        )
    elif fmt is None and body.parameters.get("format") == "json":
        response_format = ResponseFormat(type="json_object")
    tools = tuple(
        Tool(t.function.name, t.function.description, t.function.parameters, t.function.strict)
        for t in body.tools or []
    )
    choice = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        tool_choice = ToolChoice("function", choice.function.name)
    else:
        tool_choice = ToolChoice(choice or "auto")
    reasoning = (
        ReasoningSpec(body.reasoning.effort, body.reasoning.max_tokens) if body.reasoning else None
    )
    if not tools and response_format is None and reasoning is None:
        return NO_FEATURES
    return Features(
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=response_format,
        reasoning=reasoning,
    )
