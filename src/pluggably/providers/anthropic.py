"""Anthropic's Messages API (``POST /v1/messages``), JSON and SSE, and its model list."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from pluggably.errors import BackendUnavailable, GatewayError, ProviderNotConfigured, RateLimited
from pluggably.messages import Message
from pluggably.providers import errors
from pluggably.providers.base import (
    Completion,
    Credential,
    Delta,
    ProviderCall,
    StreamEnd,
    StreamItem,
    Usage,
)
from pluggably.providers.sse import Event, events
from pluggably.providers.streaming import StreamingProvider, StreamRequest
from pluggably.providers.upstream import Upstream
from pluggably.stops import as_list

API_VERSION = "2023-06-01"
# Anthropic has no default: every request must say how many tokens it may produce.
DEFAULT_MAX_TOKENS = 1024
# The gateway's schema allows OpenAI's 0-2 range; Anthropic rejects anything above 1.
MAX_TEMPERATURE = 1.0
# There is no JSON mode: the model is asked for one in the system prompt instead.
JSON_INSTRUCTION = "Answer with a single valid JSON value only: no prose, no Markdown code fences."
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "stop",
    "pause_turn": "stop",
    "refusal": "stop",
}
MODELS_PAGE_SIZE = 100
MAX_MODEL_PAGES = 5  # 500 models: far more than Anthropic lists; bounds a looping cursor


def _blocks(message: Message) -> list[dict[str, Any]]:
    """Images first (Anthropic recommends them before the question), then the text;
    empty text blocks are left out because the API rejects them."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": img.mime, "data": img.data_b64},
        }
        for img in message.images
    ]
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    return blocks


def _turns(messages: list[Message]) -> list[dict[str, Any]]:
    """User/assistant turns; consecutive ones of the same role merged, since the API
    requires the roles to alternate. A last assistant turn is a prefill, which Anthropic
    continues; it refuses one that ends in whitespace, so that is trimmed."""
    if messages and messages[-1].role == "assistant":
        last = messages[-1]
        messages = [*messages[:-1], dataclasses.replace(last, text=last.text.rstrip())]
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": message.role, "content": blocks})
    return turns


def _system(call: ProviderCall) -> str:
    parts = [m.text for m in call.messages if m.role == "system" and m.text]
    if call.parameters.get("format") == "json":
        parts.append(JSON_INSTRUCTION)
    return "\n\n".join(parts)


def messages_body(call: ProviderCall, *, stream: bool) -> dict[str, Any]:
    params = call.parameters
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": params.get("max_tokens") or DEFAULT_MAX_TOKENS,
        "messages": _turns(call.messages),
    }
    if system := _system(call):
        body["system"] = system
    if params.get("temperature") is not None:
        body["temperature"] = min(float(params["temperature"]), MAX_TEMPERATURE)
    if params.get("top_p") is not None:
        body["top_p"] = params["top_p"]
    if stops := as_list(params.get("stop")):
        body["stop_sequences"] = stops
    # `seed` is deliberately dropped: the API has no such field and would 400 on it.
    if stream:
        body["stream"] = True
    return body


def _finish(stop_reason: Any) -> str:
    return _FINISH.get(str(stop_reason), "stop") if stop_reason else "stop"


def _stop_sequence(data: Any) -> str | None:
    """The stop sequence Anthropic says ended the text (``stop_reason: stop_sequence``)."""
    if not isinstance(data, dict) or data.get("stop_reason") != "stop_sequence":
        return None
    found = data.get("stop_sequence")
    return found if isinstance(found, str) else None


def _usage(data: Any) -> Usage | None:
    return Usage.read(data, "input_tokens", "output_tokens")


@dataclass
class _StreamState:
    """What the events of one stream have told us so far."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    finish: str = "stop"
    stop_sequence: str | None = None
    done: bool = False

    @property
    def usage(self) -> Usage | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return Usage(self.input_tokens, self.output_tokens)

    def count(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if isinstance(usage.get("input_tokens"), int):
            self.input_tokens = usage["input_tokens"]
        if isinstance(usage.get("output_tokens"), int):
            self.output_tokens = usage["output_tokens"]


class AnthropicProvider(StreamingProvider):
    modalities = frozenset({"text"})
    max_stops: int | None = None  # Anthropic documents no small limit

    def __init__(self, name: str, client: Upstream, base_url: str) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/")

    # addressing
    def _url(self, credential: Credential, path: str) -> tuple[str, dict[str, str]]:
        base = self.base_url or ""
        if not base:
            raise ProviderNotConfigured(f"No base URL is configured for {self.name}.")
        headers = {
            "x-api-key": str(credential.get("api_key") or ""),
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        return f"{base.rstrip('/')}{path}", headers

    # the protocol
    async def complete(self, call: ProviderCall, credential: Credential) -> Completion:
        url, headers = self._url(credential, "/v1/messages")
        body = messages_body(call, stream=False)
        data = await self.client.json(
            "POST", url, provider=self.name, model=call.model, headers=headers, body=body
        )
        try:
            blocks = data["content"]
            text = "".join(b["text"] for b in blocks if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError):
            raise errors.malformed(self.name, call.model, "no content") from None
        return Completion(
            text=text,
            finish_reason=_finish(data.get("stop_reason")),
            usage=_usage(data.get("usage")),
            upstream_model=data.get("model"),
            stop_sequence=_stop_sequence(data),
        )

    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        url, headers = self._url(credential, "/v1/messages")
        return StreamRequest(url, headers, messages_body(call, stream=True))

    async def _frames(
        self, call: ProviderCall, lines: AsyncIterator[str]
    ) -> AsyncIterator[StreamItem]:
        state = _StreamState()
        async for event in events(lines):
            text = self._apply(call, event, state)
            if text:
                yield Delta(text)
            if state.done:
                break
        if not state.done:
            raise errors.malformed(self.name, call.model, "the stream ended early")
        yield StreamEnd(state.finish, state.usage, stop_sequence=state.stop_sequence)

    def _apply(self, call: ProviderCall, event: Event, state: _StreamState) -> str | None:
        """Fold one SSE event into ``state``; the text it adds, if any."""
        try:
            data = orjson.loads(event.data)
        except ValueError:
            raise errors.malformed(self.name, call.model, "a stream event is not JSON") from None
        if not isinstance(data, dict):
            raise errors.malformed(self.name, call.model, "a stream event is not an object")
        kind = data.get("type") or event.event
        if kind == "error":
            raise self._stream_error(call, data)
        if kind == "message_start":
            state.count((data.get("message") or {}).get("usage"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            # Other delta kinds (thinking, tool input JSON) are not part of the answer text.
            if delta.get("type") == "text_delta":
                return str(delta.get("text") or "")
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            state.finish = _finish(delta.get("stop_reason"))
            state.stop_sequence = _stop_sequence(delta)
            state.count(data.get("usage"))
        elif kind == "message_stop":
            state.done = True
        return None  # ping, content_block_start/stop, and kinds added later

    def _stream_error(self, call: ProviderCall, data: dict[str, Any]) -> GatewayError:
        """An ``event: error`` after the 200 went out: the API's way of failing mid-stream."""
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        kind, message = error.get("type"), errors.quoted(str(error.get("message") or "error event"))
        who = f"{self.name} ({call.model})"
        if kind == "overloaded_error":
            return BackendUnavailable(f"{who} is overloaded: {message}.", retry_after=5)
        if kind == "rate_limit_error":
            return RateLimited(f"{who} is rate limiting requests: {message}.", retry_after=1)
        return errors.malformed(self.name, call.model, f"an error event ({kind}: {message})")

    async def list_models(self, credential: Credential) -> list[str]:
        url, headers = self._url(credential, "/v1/models")
        ids: list[str] = []
        after: str | None = None
        for _ in range(MAX_MODEL_PAGES):
            params = {"limit": str(MODELS_PAGE_SIZE)}
            if after is not None:
                params["after_id"] = after
            page = await self.client.json(
                "GET", url, provider=self.name, model="models", headers=headers, params=params
            )
            try:
                ids += [str(m["id"]) for m in page["data"]]
                last = page.get("last_id") if page.get("has_more") else None
            except (KeyError, TypeError, AttributeError):
                raise errors.malformed(self.name, "models", "no model list") from None
            if not last:  # no more pages, or no cursor to ask for them with
                break
            after = str(last)
        return sorted(ids)
