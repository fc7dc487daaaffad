"""An OpenAI chat history as the native ``input.messages``: text and image parts,
assistant turns with their tool calls (or the legacy ``function_call``) and their
reasoning, tool results (and the legacy ``function`` results)."""

from __future__ import annotations

from typing import Any

from pluggably.errors import FeatureNotSupported
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.shapes import (
    OpenAIChatMessageIn,
    OpenAIImagePart,
    OpenAIRefusalPart,
    OpenAITextPart,
)

_NATIVE_ROLE = {"developer": "system", "function": "tool"}


def native_messages(
    turns: list[OpenAIChatMessageIn],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The native messages, and the images of every turn (the native input carries one
    image list per request; they ride on the last user turn). A legacy ``function``
    result answers the legacy ``function_call`` of the assistant turn before it: that
    call gets an id here, which the result names."""
    images: list[str] = []
    messages: list[dict[str, Any]] = []
    legacy_call: str | None = None
    for index, turn in enumerate(turns):
        message: dict[str, Any] = {
            "role": _NATIVE_ROLE.get(turn.role, turn.role),
            "content": _text(index, turn, images),
        }
        if turn.role == "assistant":
            message |= _assistant_fields(index, turn)
            legacy_call = _legacy_id(index) if turn.function_call else None
        elif turn.role == "tool":
            if turn.tool_call_id is None:
                raise field_error(
                    [*_at(index), "tool_call_id"],
                    "A tool message names the call it answers in tool_call_id.",
                )
            message["tool_call_id"] = turn.tool_call_id
        elif turn.role == "function":
            if legacy_call is None:
                raise field_error(
                    [*_at(index), "role"],
                    "A function message answers the assistant's function_call just before "
                    "it; none came first (send tools and tool messages instead).",
                )
            message["tool_call_id"], legacy_call = legacy_call, None
        messages.append(message)
    return messages, images


def _at(index: int) -> list[str | int]:
    return ["messages", index]


def _legacy_id(index: int) -> str:
    return f"call_legacy_{index}"


def _text(index: int, turn: OpenAIChatMessageIn, images: list[str]) -> str | None:
    """The turn's text; its image parts go to ``images``. Tool results are text only."""
    content = turn.content
    if content is None or isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, OpenAITextPart):
            texts.append(part.text)
        elif isinstance(part, OpenAIRefusalPart):
            texts.append(part.refusal)
        elif turn.role in ("tool", "function", "assistant"):
            raise field_error(
                [*_at(index), "content", j, "type"],
                f"A {turn.role} message carries text parts only, not {part.type}.",
            )
        else:
            images.append(_image(index, j, part))
    return "\n".join(texts)


def _image(index: int, j: int, part: OpenAIImagePart) -> str:
    url = part.image_url.url
    if url.startswith(("http://", "https://")):
        raise field_error(
            [*_at(index), "content", j, "image_url", "url"],
            "Image URLs are not fetched here; send the image as a data: URL (base64).",
            FeatureNotSupported,
        )
    return url


def _assistant_fields(index: int, turn: OpenAIChatMessageIn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    calls = []
    for j, call in enumerate(turn.tool_calls or []):
        if call.type != "function":
            raise field_error(
                [*_at(index), "tool_calls", j, "type"],
                f"Tool calls of type '{call.type}' are not supported here; only function "
                "calls are.",
                FeatureNotSupported,
            )
        if call.function is None:
            raise field_error(
                [*_at(index), "tool_calls", j, "function"], "A function call needs function."
            )
        calls.append({"id": call.id, "type": "function", "function": call.function.model_dump()})
    if turn.function_call is not None:
        function = turn.function_call.model_dump()
        calls.append({"id": _legacy_id(index), "type": "function", "function": function})
    if calls:
        fields["tool_calls"] = calls
    if turn.reasoning_content:
        fields["reasoning"] = turn.reasoning_content
    return fields
