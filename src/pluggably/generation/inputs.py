"""Turning the request's input into the provider-neutral conversation."""

from __future__ import annotations

import base64
import binascii
import re

from pluggably.errors import FeatureNotSupported, InvalidParameter, PayloadTooLarge
from pluggably.generation.schemas import GenerateRequest
from pluggably.messages import ImageInput, Message

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
        messages += [Message(m.role, m.content) for m in body.input.messages]
    elif body.input.prompt is not None:
        messages.append(Message("user", body.input.prompt))
    if not any(m.role == "user" for m in messages):
        raise InvalidParameter("Give input.prompt or at least one user message in input.messages.")
    images = tuple(decode_image(v, i) for i, v in enumerate(body.input.images or []))
    if images:
        last = max(i for i, m in enumerate(messages) if m.role == "user")
        messages[last] = Message("user", messages[last].text, images)
    return messages
