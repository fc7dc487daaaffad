"""OpenAI requests as /v1/generate requests, and the native answers (JSON and SSE
frames) as OpenAI objects and chunks. Pure functions: no I/O here."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import ValidationError

from pluggably.api.frames import tool_call_fragment
from pluggably.errors import FeatureNotSupported, status_of_code
from pluggably.generation.events import (
    Completed,
    Event,
    Failed,
    ReasoningDelta,
    Selected,
    TextDelta,
    ToolCallDelta,
)
from pluggably.generation.schemas import GenerateRequest, GenerateResponse, UsageInfo
from pluggably.surfaces.bad_input import field_path, invalid, validation_details
from pluggably.surfaces.openai.conversation import native_messages
from pluggably.surfaces.openai.features import assistant_message, finish_reason, native_features
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.shapes import (
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
# Native parameters by the names OpenAI's API gives them, in error messages.
PARAM_NAMES = {"format": "response_format", "num_images": "n", "width": "size", "height": "size"}


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, code: str, message: str, details: Any) -> dict[str, Any]:
    """OpenAI's error object: ``type`` from the status, ``code`` the gateway's code."""
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": field_path(details, PARAM_NAMES),
            "code": code,
        }
    }


def stream_error(code: str, message: str) -> dict[str, Any]:
    """A failure after the stream's 200: the chunk the OpenAI SDKs raise on."""
    return error_body(status_of_code(code), code, message, None)


# requests
def _refuse_unsupported(body: OpenAISamplingRequest) -> None:
    if body.n not in (None, 1):
        raise field_error(
            ["n"], "Only n=1 is supported here; send one request per completion you need."
        )
    if body.logprobs not in (None, False, 0):
        raise field_error(["logprobs"], "logprobs are not available here.", FeatureNotSupported)


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
        raise invalid(validation_details(exc.errors()), names=PARAM_NAMES) from None


def chat_request(body: OpenAIChatCompletionRequest) -> GenerateRequest:
    """The native request of a chat completion: the history, its images, the sampling
    parameters, and the tools, output format and reasoning asked for."""
    _refuse_unsupported(body)
    messages, images = native_messages(body.messages)
    limit = body.max_completion_tokens
    return _native(
        {
            "model": body.model,
            "modality": "text",
            "input": {"messages": messages, "images": images or None},
            "parameters": _sampling(body, limit if limit is not None else body.max_tokens),
            "stream": bool(body.stream),
            "wait": True,
            **native_features(body),
        }
    )


def completion_prompt(body: OpenAICompletionRequest) -> str:
    if isinstance(body.prompt, str):
        return body.prompt
    if len(body.prompt) != 1:
        raise field_error(["prompt"], "Send exactly one prompt per request.")
    return body.prompt[0]


def completion_request(body: OpenAICompletionRequest) -> GenerateRequest:
    _refuse_unsupported(body)
    if body.suffix:
        raise field_error(["suffix"], "suffix is not supported here.", FeatureNotSupported)
    if body.best_of not in (None, 1):
        raise field_error(["best_of"], "Only best_of=1 is supported here.")
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
        raise field_error(["stream"], "Image streams are not supported here.", FeatureNotSupported)
    params: dict[str, Any] = {"num_images": 1 if body.n is None else body.n}
    if body.size and body.size != "auto":
        width, x, height = body.size.partition("x")
        if not (x and width.isdigit() and height.isdigit()):
            raise field_error(
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
def usage(info: UsageInfo | None) -> OpenAIUsage | None:
    return OpenAIUsage.model_validate(info.model_dump()) if info is not None else None


def chat_completion(response: GenerateResponse, *, legacy: bool = False) -> OpenAIChatCompletion:
    """``legacy``: the request sent the legacy ``functions``; the call comes back as
    ``function_call``."""
    return OpenAIChatCompletion(
        id=f"chatcmpl-{response.request_id}",
        created=int(time.time()),
        model=response.model,
        choices=[
            OpenAIChatChoice(
                message=assistant_message(response.output, legacy=legacy),
                finish_reason=finish_reason(response.finish_reason, legacy=legacy),
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
    chosen, content, tool-call and reasoning chunks, a chunk with ``finish_reason``, a
    usage chunk when asked; a failure becomes OpenAI's error object. Queue and loading
    notices are not forwarded: the SSE layer sends keep-alive comments while nothing is
    said.

    Where tools are offered the role chunk's content is null, as OpenAI's is before tool
    calls (a client assembling the deltas then finds null for an answer of calls only).
    ``legacy``: the request sent the legacy ``functions``, whose call streams as
    ``delta.function_call``."""

    def __init__(
        self,
        kind: Literal["chat", "text"],
        request_id: str,
        *,
        include_usage: bool,
        echo: str | None = None,
        offers_tools: bool = False,
        legacy: bool = False,
    ) -> None:
        self.kind, self.include_usage, self.echo = kind, include_usage, echo
        self.offers_tools, self.legacy = offers_tools, legacy
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

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.kind == "text":
            text = delta.get("content") or ""
            return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def _tool_call(self, event: ToolCallDelta) -> dict[str, Any]:
        if not self.legacy:
            return {"tool_calls": [tool_call_fragment(event)]}
        call = {"name": event.name} if event.name is not None else {}
        return {"function_call": {**call, "arguments": event.arguments}}

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._chunk(self._choice({"content": event.text}))]
        if isinstance(event, ToolCallDelta):
            if self.kind == "text" or (self.legacy and event.index > 0):
                return []  # a legacy answer carries one call
            return [self._chunk(self._choice(self._tool_call(event)))]
        if isinstance(event, ReasoningDelta):
            if self.kind == "text" or not event.text:  # a signature has no OpenAI field
                return []
            return [self._chunk(self._choice({"reasoning_content": event.text}))]
        if isinstance(event, Selected):
            self.head["model"] = event.reported_model
            if self.kind == "chat":
                role = {"role": "assistant", "content": None if self.offers_tools else ""}
                return [self._chunk(self._choice(role))]
            return [self._chunk(self._choice({"content": self.echo}))] if self.echo else []
        if isinstance(event, Completed):
            return self._finish(event.response)
        if isinstance(event, Failed):
            return [stream_error(event.error.code, event.error.message)]
        return []

    def _finish(self, response: GenerateResponse) -> list[dict[str, Any]]:
        finish = finish_reason(response.finish_reason, legacy=self.legacy)
        out = [self._chunk(self._choice({}, finish))]
        if self.include_usage:
            counted = usage(response.usage)
            out.append(self._chunk(None, usage=counted.model_dump() if counted else None))
        return out
