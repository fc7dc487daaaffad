"""Anthropic's Messages API (``POST /v1/messages``), JSON and SSE, its token count
(``/v1/messages/count_tokens``) and its model list. The request body is built in
``anthropic_body``; this module reads the answers: text, ``tool_use`` blocks as tool
calls, thinking blocks as reasoning with their signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pluggably.errors import BackendUnavailable, GatewayError, ProviderNotConfigured, RateLimited
from pluggably.messages import Features, ToolCall, signed
from pluggably.providers import errors
from pluggably.providers.anthropic_body import ANTHROPIC, count_body, messages_body
from pluggably.providers.anthropic_body import JSON_INSTRUCTION as JSON_INSTRUCTION
from pluggably.providers.base import (
    Completion,
    Credential,
    Delta,
    ProviderCall,
    ReasoningDelta,
    StreamEnd,
    StreamItem,
    ToolCallDelta,
    Usage,
)
from pluggably.providers.sse import Event, events
from pluggably.providers.streaming import StreamingProvider, StreamRequest
from pluggably.providers.upstream import Upstream

API_VERSION = "2023-06-01"
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "stop",
}
MODELS_PAGE_SIZE = 100
MAX_MODEL_PAGES = 5  # 500 models: far more than Anthropic lists; bounds a looping cursor


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


def _answer(blocks: list[dict[str, Any]]) -> Completion:
    """The text, tool calls and reasoning of an answer's content blocks (its finish
    reason and usage are filled in by the caller). Redacted thinking has nothing a
    caller could read, so it is left out."""
    answer = Completion(text="", finish_reason="stop")
    texts: list[str] = []
    thoughts: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            answer.tool_calls.append(ToolCall(str(block["id"]), str(block["name"]), arguments))
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking") or ""))
            answer.reasoning_signature = (
                signed(ANTHROPIC, block.get("signature") or None) or answer.reasoning_signature
            )
    answer.text = "".join(texts)
    answer.reasoning = "".join(thoughts) if thoughts else None
    return answer


@dataclass
class _StreamState:
    """What the events of one stream have told us so far."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    finish: str = "stop"
    stop_sequence: str | None = None
    done: bool = False
    # content block index -> the ordinal of its tool call among this answer's calls
    tool_calls: dict[int, int] = field(default_factory=dict)

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

    def block_start(self, data: dict[str, Any]) -> StreamItem | None:
        """A ``tool_use`` block opens its call: id and name in the first fragment."""
        block = data.get("content_block") or {}
        if block.get("type") != "tool_use":
            return None
        ordinal = self.tool_calls[int(data["index"])] = len(self.tool_calls)
        return ToolCallDelta(ordinal, id=str(block["id"]), name=str(block["name"]))

    def block_delta(self, data: dict[str, Any]) -> StreamItem | None:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return Delta(str(delta.get("text") or ""))
        if kind == "input_json_delta":
            ordinal = self.tool_calls[int(data["index"])]
            return ToolCallDelta(ordinal, arguments=str(delta.get("partial_json") or ""))
        if kind == "thinking_delta":
            return ReasoningDelta(str(delta.get("thinking") or ""))
        if kind == "signature_delta":
            return ReasoningDelta(
                "", signature=signed(ANTHROPIC, str(delta.get("signature") or ""))
            )
        return None  # citations and kinds added later


class AnthropicProvider(StreamingProvider):
    modalities = frozenset({"text"})
    max_stops: int | None = None  # Anthropic documents no small limit

    def __init__(self, name: str, client: Upstream, base_url: str) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/")

    def unable(self, model: str, features: Features) -> str | None:
        if features.reasoning is not None and features.uses_tools and features.tool_choice.forced:
            return (
                f"'{model}' cannot think (reasoning) while a tool call is forced "
                "(tool_choice 'required' or a named function): Anthropic refuses the pair"
            )
        return None

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
            answer = _answer(data["content"])
        except (KeyError, TypeError, AttributeError, ValueError):
            raise errors.malformed(self.name, call.model, "no content") from None
        answer.finish_reason = _finish(data.get("stop_reason"))
        answer.usage = _usage(data.get("usage"))
        answer.upstream_model = data.get("model")
        answer.stop_sequence = _stop_sequence(data)
        return answer

    async def count_tokens(self, call: ProviderCall, credential: Credential) -> int:
        """The input tokens Anthropic counts for ``call`` (its conversation, system
        prompt, tools, thinking and output format), without generating anything."""
        url, headers = self._url(credential, "/v1/messages/count_tokens")
        body = count_body(call)
        data = await self.client.json(
            "POST", url, provider=self.name, model=call.model, headers=headers, body=body
        )
        count = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise errors.malformed(self.name, call.model, "no input_tokens in the token count")
        return count

    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        url, headers = self._url(credential, "/v1/messages")
        return StreamRequest(url, headers, messages_body(call, stream=True))

    async def _frames(
        self, call: ProviderCall, lines: AsyncIterator[str]
    ) -> AsyncIterator[StreamItem]:
        state = _StreamState()
        async for event in events(lines):
            item = self._apply(call, event, state)
            if item is not None and not (isinstance(item, Delta) and not item.text):
                yield item
            if state.done:
                break
        if not state.done:
            raise errors.malformed(self.name, call.model, "the stream ended early")
        yield StreamEnd(state.finish, state.usage, stop_sequence=state.stop_sequence)

    def _apply(self, call: ProviderCall, event: Event, state: _StreamState) -> StreamItem | None:
        """Fold one SSE event into ``state``; the piece of the answer it carries, if any."""
        try:
            data = orjson.loads(event.data)
        except ValueError:
            raise errors.malformed(self.name, call.model, "a stream event is not JSON") from None
        if not isinstance(data, dict):
            raise errors.malformed(self.name, call.model, "a stream event is not an object")
        kind = data.get("type") or event.event
        try:
            if kind == "content_block_start":
                return state.block_start(data)
            if kind == "content_block_delta":
                return state.block_delta(data)
        except (KeyError, TypeError, ValueError):
            raise errors.malformed(self.name, call.model, f"a malformed {kind} event") from None
        if kind == "error":
            raise self._stream_error(call, data)
        if kind == "message_start":
            state.count((data.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            state.finish = _finish(delta.get("stop_reason"))
            state.stop_sequence = _stop_sequence(delta)
            state.count(data.get("usage"))
        elif kind == "message_stop":
            state.done = True
        return None  # ping, content_block_stop, and kinds added later

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
