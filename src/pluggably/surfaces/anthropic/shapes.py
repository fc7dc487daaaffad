"""Anthropic's Messages API shapes (API.md §8) and their translation to and from the
native generation: the request to a ``GenerateRequest``, the response to a ``Message``,
the native SSE frames to Anthropic's event sequence, gateway errors to its envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pluggably import errors
from pluggably.errors import FeatureNotSupported, GatewayError, InvalidParameter
from pluggably.generation.events import Completed, Event, Failed, Selected, TextDelta
from pluggably.generation.schemas import GenerateRequest, GenerateResponse

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class _Lenient(BaseModel):
    # Fields this gateway does not act on (cache_control, citations, metadata, …) are
    # accepted and ignored, so newer SDKs keep working.
    # NaN and Infinity (which Python's JSON reader accepts) are not numbers to send on.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class AnthropicTextBlock(_Lenient):
    type: Literal["text"]
    text: str


class AnthropicBase64Source(_Lenient):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class AnthropicUrlSource(_Lenient):
    type: Literal["url"]
    url: str


class AnthropicImageBlock(_Lenient):
    type: Literal["image"]
    source: Annotated[AnthropicBase64Source | AnthropicUrlSource, Field(discriminator="type")]


AnthropicContentBlock = Annotated[
    AnthropicTextBlock | AnthropicImageBlock, Field(discriminator="type")
]


class AnthropicInputMessage(_Lenient):
    role: Literal["user", "assistant"]
    content: str | list[AnthropicContentBlock]

    @model_validator(mode="after")
    def _images_from_users(self) -> AnthropicInputMessage:
        if self.role == "assistant" and any(
            isinstance(b, AnthropicImageBlock) for b in self.blocks
        ):
            raise ValueError("image blocks are only accepted in user messages")
        return self

    @property
    def blocks(self) -> list[AnthropicTextBlock | AnthropicImageBlock]:
        if isinstance(self.content, str):
            return [AnthropicTextBlock(type="text", text=self.content)]
        return list(self.content)


class AnthropicMessagesRequest(_Lenient):
    """``POST /anthropic/v1/messages``: the fields of Anthropic's Messages API that this
    gateway serves. ``top_k``, ``metadata``, ``thinking`` and ``tool_choice`` are accepted
    and ignored; tools are refused."""

    model: str = Field(min_length=1, max_length=300, examples=["local/gemma"])
    messages: list[AnthropicInputMessage] = Field(min_length=1, max_length=2000)
    max_tokens: int = Field(ge=1, examples=[256])
    system: str | list[AnthropicTextBlock] | None = None
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("tool use is not supported by this gateway")
        return value


class AnthropicTextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class AnthropicUsage(BaseModel):
    input_tokens: int
    output_tokens: int


class AnthropicMessage(BaseModel):
    """The non-streamed answer, as Anthropic's API returns it."""

    id: str = Field(examples=["msg_5f2c…"])
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[AnthropicTextContent]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: AnthropicUsage


class AnthropicErrorDetail(BaseModel):
    type: str = Field(examples=["not_found_error"])
    message: str


class AnthropicError(BaseModel):
    """Every error under /anthropic, in Anthropic's envelope."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail
    request_id: str | None = None


# request


def _text(blocks: list[AnthropicTextBlock | AnthropicImageBlock]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, AnthropicTextBlock) and b.text)


def _image(block: AnthropicImageBlock) -> str:
    if isinstance(block.source, AnthropicUrlSource):
        raise FeatureNotSupported("Image URLs are not supported here; send the image as base64.")
    return f"data:{block.source.media_type};base64,{block.source.data}"


def generate_request(body: AnthropicMessagesRequest) -> GenerateRequest:
    """The native request. Images ride on the last user turn, as on ``/v1/generate``;
    ``wait`` is set because the SDKs cannot follow a 202."""
    system = body.system
    if isinstance(system, list):
        system = "\n\n".join(b.text for b in system if b.text)
    parameters: dict[str, Any] = {"max_tokens": body.max_tokens}
    if body.temperature is not None:
        parameters["temperature"] = body.temperature
    if body.top_p is not None:
        parameters["top_p"] = body.top_p
    if body.stop_sequences:
        parameters["stop"] = body.stop_sequences
    native = {
        "model": body.model,
        "modality": "text",
        "input": {
            "messages": [{"role": m.role, "content": _text(m.blocks)} for m in body.messages],
            "images": [
                _image(b)
                for m in body.messages
                for b in m.blocks
                if isinstance(b, AnthropicImageBlock)
            ]
            or None,
        },
        "system_prompt": system or None,
        "parameters": parameters,
        "stream": body.stream,
        "wait": True,
    }
    try:
        return GenerateRequest.model_validate(native)
    except ValidationError as exc:  # the native limits: message size, image count, …
        raise InvalidParameter(problems(exc.errors(), skip=0)) from None


def problems(errs: Any, *, skip: int = 1) -> str:
    """Validation errors as Anthropic words them: ``max_tokens: Field required``."""
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())[skip:]) or 'body'}: {e.get('msg', '')}"
        for e in list(errs)[:5]
    ]
    return "; ".join(parts) or "The request body is invalid."


_FIELD_OF_PARAMETER = {"stop": "stop_sequences"}


def parameter_problems(details: Any) -> str:
    """The native parameter check's findings, in the Anthropic request's field names."""
    found = [
        {**d, "loc": [_FIELD_OF_PARAMETER.get(str(p), str(p)) for p in d.get("loc", ())[2:]]}
        for d in details or []
        if isinstance(d, dict)
    ]
    return problems(found, skip=0)


# response

_STOP: dict[str, StopReason] = {"stop": "end_turn", "length": "max_tokens"}


def stop_reason(finish_reason: str, stop_sequence: str | None = None) -> StopReason:
    """``stop`` → ``end_turn``, or ``stop_sequence`` when the native result names the
    caller's stop sequence that ended the text (local models, Anthropic, the sequences
    the gateway applies itself; an OpenAI-compatible upstream that stopped at one says
    only ``stop``, so that is ``end_turn``); ``length`` → ``max_tokens``."""
    if finish_reason == "stop" and stop_sequence:
        return "stop_sequence"
    return _STOP.get(finish_reason, "end_turn")


def message_id(request_id: str) -> str:
    """``msg_`` and the hex of the gateway's request id, so the two can be matched."""
    return f"msg_{request_id.removeprefix('req_')}"


def message_of(response: GenerateResponse) -> AnthropicMessage:
    usage = response.usage
    return AnthropicMessage(
        id=message_id(response.request_id),
        model=response.model,
        content=[AnthropicTextContent(text=response.output.text or "")],
        stop_reason=stop_reason(response.finish_reason, response.stop_sequence),
        stop_sequence=response.stop_sequence if response.finish_reason == "stop" else None,
        usage=AnthropicUsage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
    )


# errors


def _statuses() -> dict[str, int]:
    """Each gateway error code's status, from the error classes themselves."""
    found: dict[str, int] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, GatewayError):
            found.setdefault(value.code, value.status)
    return found


_STATUS_OF_CODE = _statuses()

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def status_of(code: str) -> int:
    """The HTTP status of a gateway error code (stream error frames carry only the code)."""
    return _STATUS_OF_CODE.get(code, 500)


def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


# streams


@dataclass
class StreamTranslator:
    """A generation's events in, Anthropic events out: ``message_start``,
    ``content_block_start``, ``ping``, ``content_block_delta``…, ``content_block_stop``,
    ``message_delta``, ``message_stop`` (or ``error``). Queue and loading notices are
    dropped: the client just waits. Input tokens are known only at the end, so
    ``message_start`` says 0 and ``message_delta`` carries the real count."""

    message_id: str
    started: bool = False
    finished: bool = False

    def events(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            delta = {"type": "text_delta", "text": event.text}
            return [{"type": "content_block_delta", "index": 0, "delta": delta}]
        if isinstance(event, Selected):
            return self._start(event.reported_model)
        if isinstance(event, Completed):
            return self._end(event.response)
        if isinstance(event, Failed):
            return [self.error(event.error.code, event.error.message)]
        return []

    def error(self, code: str, message: str) -> dict[str, Any]:
        self.finished = True
        return error_body(status_of(code), message)

    def _start(self, model: str) -> list[dict[str, Any]]:
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            {"type": "message_start", "message": message},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "ping"},
        ]

    def _end(self, response: GenerateResponse) -> list[dict[str, Any]]:
        self.finished = True
        usage = response.usage
        sequence = response.stop_sequence
        reason = stop_reason(response.finish_reason, sequence)
        return [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": reason,
                    "stop_sequence": sequence if reason == "stop_sequence" else None,
                },
                "usage": {
                    "input_tokens": usage.prompt_tokens if usage else 0,
                    "output_tokens": usage.completion_tokens if usage else 0,
                },
            },
            {"type": "message_stop"},
        ]
