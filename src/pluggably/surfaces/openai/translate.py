"""OpenAI requests as /v1/generate requests, and the native answers (JSON and SSE
frames) as OpenAI objects and chunks. Pure functions: no I/O here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import ValidationError

from pluggably.errors import FeatureNotSupported, GatewayError, InvalidParameter
from pluggably.generation.events import Completed, Event, Failed, Selected, TextDelta
from pluggably.generation.schemas import GenerateRequest, GenerateResponse, UsageInfo
from pluggably.surfaces.openai.shapes import (
    OpenAIAssistantMessage,
    OpenAIChatChoice,
    OpenAIChatCompletion,
    OpenAIChatCompletionRequest,
    OpenAICompletionChoice,
    OpenAICompletionRequest,
    OpenAIImageGenerationRequest,
    OpenAISamplingRequest,
    OpenAITextCompletion,
    OpenAIUsage,
)

# Native parameter names as the OpenAI field a client sent.
_PARAM_NAMES = {"format": "response_format", "num_images": "n", "width": "size", "height": "size"}


def _all_errors(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_errors(sub)


_STATUS_OF_CODE = {cls.code: cls.status for cls in _all_errors(GatewayError)}


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def param_of(details: Any) -> str | None:
    """The OpenAI field a validation error is about: ``messages[0].content``."""
    if not isinstance(details, list) or not details or not isinstance(details[0], dict):
        return None
    loc = [p for p in details[0].get("loc") or () if p != "body"]
    if loc[:1] == ["parameters"] and len(loc) > 1:
        loc = [_PARAM_NAMES.get(str(loc[1]), str(loc[1])), *loc[2:]]
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def error_body(status: int, code: str, message: str, details: Any) -> dict[str, Any]:
    """OpenAI's error object: ``type`` from the status, ``code`` the gateway's code."""
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": param_of(details),
            "code": code,
        }
    }


def stream_error(code: str, message: str) -> dict[str, Any]:
    """A failure after the stream's 200: the chunk the OpenAI SDKs raise on."""
    return error_body(_STATUS_OF_CODE.get(code, 500), code, message, None)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """``{loc, msg, type}`` per problem (never the input: it may hold secrets)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]


def invalid(details: list[dict[str, Any]], message: str | None = None) -> InvalidParameter:
    """A 400 naming the first offending field (OpenAI answers bad input with 400)."""
    first = details[0] if details else {"msg": "invalid request"}
    param = param_of(details)
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    text = message or f"Invalid value for '{param or 'body'}': {first['msg']}{more}"
    return InvalidParameter(text, details=details)


def _field_error(
    field: list[str | int], message: str, cls: type[GatewayError] = InvalidParameter
) -> GatewayError:
    return cls(message, details=[{"loc": ["body", *field], "msg": message, "type": "value_error"}])


# requests
def _refuse_unsupported(body: OpenAISamplingRequest) -> None:
    if body.n not in (None, 1):
        raise _field_error(
            ["n"], "Only n=1 is supported here; send one request per completion you need."
        )
    if body.logprobs not in (None, False, 0):
        raise _field_error(["logprobs"], "logprobs are not available here.", FeatureNotSupported)


def _sampling(body: OpenAISamplingRequest, max_tokens: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        name: value
        for name in ("temperature", "top_p", "seed", "stop")
        if (value := getattr(body, name)) is not None
    }
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    return params


def _native(fields: dict[str, Any]) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate(fields)
    except ValidationError as exc:  # a limit of the native request (sizes, counts)
        raise invalid(validation_details(exc.errors())) from None


def _message(index: int, role: str, content: Any, images: list[str]) -> dict[str, str]:
    if role in ("tool", "function"):
        raise _field_error(
            ["messages", index, "role"],
            "Tool and function messages are not supported here.",
            FeatureNotSupported,
        )
    if content is None or isinstance(content, str):
        return {"role": "system" if role == "developer" else role, "content": content or ""}
    texts = []
    for j, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text)
            continue
        url = part.image_url.url
        if url.startswith(("http://", "https://")):
            raise _field_error(
                ["messages", index, "content", j, "image_url", "url"],
                "Image URLs are not fetched here; send the image as a data: URL (base64).",
                FeatureNotSupported,
            )
        images.append(url)
    return {"role": "system" if role == "developer" else role, "content": "\n".join(texts)}


def chat_request(body: OpenAIChatCompletionRequest) -> GenerateRequest:
    """The native request of a chat completion. Images of every message ride on the last
    user turn (the native input carries one image list per request)."""
    _refuse_unsupported(body)
    if body.tools or body.functions:
        field = "tools" if body.tools else "functions"
        raise _field_error([field], "Tool calling is not supported here.", FeatureNotSupported)
    images: list[str] = []
    messages = [_message(i, m.role, m.content, images) for i, m in enumerate(body.messages)]
    limit = body.max_completion_tokens
    params = _sampling(body, limit if limit is not None else body.max_tokens)
    fmt = body.response_format.type if body.response_format else "text"
    if fmt == "json_schema":
        raise _field_error(
            ["response_format", "type"],
            "json_schema is not supported here; use {'type': 'json_object'} and describe "
            "the shape in the prompt.",
            FeatureNotSupported,
        )
    if fmt == "json_object":
        params["format"] = "json"
    return _native(
        {
            "model": body.model,
            "modality": "text",
            "input": {"messages": messages, "images": images or None},
            "parameters": params,
            "stream": bool(body.stream),
            "wait": True,
        }
    )


def completion_prompt(body: OpenAICompletionRequest) -> str:
    if isinstance(body.prompt, str):
        return body.prompt
    if len(body.prompt) != 1:
        raise _field_error(["prompt"], "Send exactly one prompt per request.")
    return body.prompt[0]


def completion_request(body: OpenAICompletionRequest) -> GenerateRequest:
    _refuse_unsupported(body)
    if body.suffix:
        raise _field_error(["suffix"], "suffix is not supported here.", FeatureNotSupported)
    if body.best_of not in (None, 1):
        raise _field_error(["best_of"], "Only best_of=1 is supported here.")
    return _native(
        {
            "model": body.model,
            "modality": "text",
            "input": {"prompt": completion_prompt(body)},
            "parameters": _sampling(body, body.max_tokens),
            "stream": bool(body.stream),
            "wait": True,
        }
    )


def image_request(body: OpenAIImageGenerationRequest) -> GenerateRequest:
    if body.stream:
        raise _field_error(["stream"], "Image streams are not supported here.", FeatureNotSupported)
    params: dict[str, Any] = {"num_images": 1 if body.n is None else body.n}
    if body.size and body.size != "auto":
        width, x, height = body.size.partition("x")
        if not (x and width.isdigit() and height.isdigit()):
            raise _field_error(
                ["size"], f"size must be 'WIDTHxHEIGHT' or 'auto', not {body.size!r}."
            )
        params.update(width=int(width), height=int(height))
    return _native(
        {
            "model": body.model,
            "modality": "image",
            "input": {"prompt": body.prompt},
            "parameters": params,
            "wait": True,
        }
    )


# responses
def finish_reason(native: str) -> str:
    return "length" if native == "length" else "stop"


def usage(info: UsageInfo | None) -> OpenAIUsage | None:
    return OpenAIUsage.model_validate(info.model_dump()) if info is not None else None


def chat_completion(response: GenerateResponse) -> OpenAIChatCompletion:
    return OpenAIChatCompletion(
        id=f"chatcmpl-{response.request_id}",
        created=int(time.time()),
        model=response.model,
        choices=[
            OpenAIChatChoice(
                message=OpenAIAssistantMessage(content=response.output.text or ""),
                finish_reason=finish_reason(response.finish_reason),
            )
        ],
        usage=usage(response.usage),
    )


def text_completion(response: GenerateResponse, echo: str | None) -> OpenAITextCompletion:
    return OpenAITextCompletion(
        id=f"cmpl-{response.request_id}",
        created=int(time.time()),
        model=response.model,
        choices=[
            OpenAICompletionChoice(
                text=(echo or "") + (response.output.text or ""),
                finish_reason=finish_reason(response.finish_reason),
            )
        ],
        usage=usage(response.usage),
    )


class ChunkWriter:
    """A generation's events as OpenAI chunks: (chat) a role chunk once the model is
    chosen, content chunks, a chunk with ``finish_reason``, a usage chunk when asked;
    a failure becomes OpenAI's error object. Queue and loading notices are
    not forwarded: the SSE layer sends keep-alive comments while nothing is said."""

    def __init__(
        self,
        kind: Literal["chat", "text"],
        request_id: str,
        *,
        include_usage: bool,
        echo: str | None = None,
    ) -> None:
        self.kind, self.include_usage, self.echo = kind, include_usage, echo
        prefix, obj = (
            ("chatcmpl", "chat.completion.chunk") if kind == "chat" else ("cmpl", "text_completion")
        )
        self.head: dict[str, Any] = {
            "id": f"{prefix}-{request_id}",
            "object": obj,
            "created": int(time.time()),
            "model": "",
        }

    def _chunk(self, choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        chunk = {**self.head, "choices": [] if choice is None else [choice], **extra}
        if self.include_usage:
            chunk.setdefault("usage", None)
        return chunk

    def _choice(
        self, text: str | None, finish: str | None, *, role: bool = False
    ) -> dict[str, Any]:
        if self.kind == "text":
            return {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._chunk(self._choice(event.text, None))]
        if isinstance(event, Selected):
            self.head["model"] = event.reported_model
            if self.kind == "chat":
                return [self._chunk(self._choice("", None, role=True))]
            return [self._chunk(self._choice(self.echo, None))] if self.echo else []
        if isinstance(event, Completed):
            response = event.response
            out = [self._chunk(self._choice(None, finish_reason(response.finish_reason)))]
            if self.include_usage:
                counted = usage(response.usage)
                out.append(self._chunk(None, usage=counted.model_dump() if counted else None))
            return out
        if isinstance(event, Failed):
            return [stream_error(event.error.code, event.error.message)]
        return []
