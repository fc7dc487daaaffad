"""Google Gemini over the Generative Language API (v1beta): ``generateContent``,
``streamGenerateContent?alt=sse`` and the model list."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pluggably.errors import (
    FeatureNotSupported,
    GatewayError,
    InvalidParameter,
    ProviderNotConfigured,
)
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
from pluggably.providers.sse import events
from pluggably.providers.streaming import StreamingProvider, StreamRequest
from pluggably.providers.upstream import Upstream
from pluggably.stops import as_list

API_VERSION = "v1beta"
# SAFETY, RECITATION, OTHER, … end the answer without being a length cut.
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
MAX_STOPS = 5
# Finish reasons meaning the answer was withheld, not merely cut short: with no text
# at all the caller gets an error that says so instead of an empty success.
_BLOCKED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"})
_MAX_MODEL_PAGES = 5
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


# request building
def _parts(message: Message) -> list[dict[str, Any]]:
    # Google's vision guidance puts images before the text that talks about them.
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": img.mime, "data": img.data_b64}} for img in message.images
    ]
    if message.text:
        parts.append({"text": message.text})
    return parts


def _contents(messages: list[Message]) -> list[dict[str, Any]]:
    """User/model turns; Gemini wants turns to alternate, so neighbours of one role
    are merged into one turn."""
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message)
        if not parts:
            continue  # an empty turn is a 400 upstream and says nothing anyway
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _generation_config(parameters: dict[str, Any]) -> dict[str, Any]:
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
    if parameters.get("format") == "json":
        config["responseMimeType"] = "application/json"
    return config


def generate_body(call: ProviderCall) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(call.messages)}
    system = [{"text": m.text} for m in call.messages if m.role == "system" and m.text]
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(call.parameters)
    if config:
        body["generationConfig"] = config
    return body


# response reading
def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict) or "promptTokenCount" not in data:
        return None
    try:
        # proto3 JSON leaves zero counts out. Thinking models bill their thoughts as
        # output, so they count as completion tokens (total then matches Google's).
        completion = int(data.get("candidatesTokenCount") or 0)
        completion += int(data.get("thoughtsTokenCount") or 0)
        return Usage(int(data["promptTokenCount"]), completion)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class _Chunk:
    """One GenerateContentResponse, whole or a stream frame of one."""

    text: str
    finish: str | None  # Google's finishReason, when this response carries one
    usage: Usage | None
    has_candidate: bool


def _chunk(data: Any, who: str) -> _Chunk:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    candidates = data.get("candidates") or []
    blocked = (data.get("promptFeedback") or {}).get("blockReason")
    if not candidates and blocked:
        raise InvalidParameter(f"{who} blocked the prompt ({blocked}); rephrase it.")
    if not candidates:
        return _Chunk("", None, _usage(data.get("usageMetadata")), has_candidate=False)
    candidate = candidates[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    # Thought summaries (thinking models) are not part of the answer.
    text = "".join(
        str(p["text"]) for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )
    finish = candidate.get("finishReason")
    return _Chunk(text, finish, _usage(data.get("usageMetadata")), has_candidate=True)


def _finish(reason: str, any_text: bool, who: str) -> str:
    if not any_text and reason in _BLOCKED:
        raise InvalidParameter(f"{who} blocked the prompt: no answer was given ({reason}).")
    return _FINISH.get(reason, "stop")


# errors
def _google_error(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)]


def _bad_key(error: dict[str, Any]) -> bool:
    reasons = {d.get("reason") for d in _details(error, "ErrorInfo")}
    return "API_KEY_INVALID" in reasons or "API key not valid" in str(error.get("message", ""))


def _retry_delay(error: dict[str, Any]) -> str | None:
    for info in _details(error, "RetryInfo"):
        match = _DURATION.match(str(info.get("retryDelay", "")))
        if match:
            return match.group(1)
    return None


def from_status(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> GatewayError:
    """errors.from_status, after two Google peculiarities are translated."""
    error = _google_error(body)
    if status == 400 and _bad_key(error):
        # Google answers a bad key with 400 INVALID_ARGUMENT; it is an auth failure
        # (the caller must fix the stored key), not a bad request.
        status = 401
    if status == 429 and "retry-after" not in headers:
        # The wait is often given only as a RetryInfo detail ("7s"), not as a header.
        delay = _retry_delay(error)
        if delay is not None:
            headers = {"retry-after": delay}
    return errors.from_status(provider, model, status, headers, body)


class GoogleProvider(StreamingProvider):
    modalities = frozenset({"text"})
    max_stops: int | None = MAX_STOPS
    page_size = 1000  # the most GET models hands out at once

    def __init__(self, name: str, client: Upstream, base_url: str) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/")

    def _who(self, model: str) -> str:
        return f"{self.name} ({model})"

    def _headers(self, credential: Credential) -> dict[str, str]:
        # The key goes in a header, never in ?key=: URLs end up in logs.
        if credential.get("api_key"):
            return {"x-goog-api-key": str(credential["api_key"])}
        if credential.get("oauth_token"):
            return {"Authorization": f"Bearer {credential['oauth_token']}"}
        if credential.get("service_account"):
            raise FeatureNotSupported(
                f"{self.name}: service account credentials need a token exchange this "
                "gateway does not do yet; store an api_key or oauth_token for "
                f"{self.name} instead (POST /v1/users/provider-keys)."
            )
        raise ProviderNotConfigured(
            f"The credential for {self.name} has neither an api_key nor an oauth_token."
        )

    def _url(self, model: str, method: str) -> str:
        # Quoted whole: a model name must not be able to reach another path.
        name = quote(model.removeprefix("models/"), safe="")
        return f"{self.base_url}/{API_VERSION}/models/{name}:{method}"

    # the protocol
    async def complete(self, call: ProviderCall, credential: Credential) -> Completion:
        headers = self._headers(credential)
        url = self._url(call.model, "generateContent")
        data = await self.client.json(
            "POST",
            url,
            provider=self.name,
            model=call.model,
            headers=headers,
            body=generate_body(call),
            from_status=from_status,
        )
        try:
            chunk = _chunk(data, self._who(call.model))
        except (TypeError, AttributeError, KeyError):
            raise errors.malformed(self.name, call.model, "not a GenerateContentResponse") from None
        if not chunk.has_candidate:
            raise errors.malformed(self.name, call.model, "no candidates")
        finish = _finish(chunk.finish or "STOP", bool(chunk.text), self._who(call.model))
        return Completion(
            text=chunk.text,
            finish_reason=finish,
            usage=chunk.usage,
            upstream_model=data.get("modelVersion"),
        )

    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        headers = self._headers(credential)
        url = self._url(call.model, "streamGenerateContent") + "?alt=sse"
        return StreamRequest(url, headers, generate_body(call), from_status=from_status)

    async def _frames(
        self, call: ProviderCall, lines: AsyncIterator[str]
    ) -> AsyncIterator[StreamItem]:
        """Every frame is a whole GenerateContentResponse; there is no [DONE]: only a
        finishReason tells a finished stream from a cut one."""
        finish: str | None = None
        usage: Usage | None = None
        any_text = False
        async for event in events(lines):
            data = self._frame(call, event)
            if isinstance(data, dict) and "error" in data:
                raise self._stream_error(call, data, event.data)
            try:
                chunk = _chunk(data, self._who(call.model))
            except (TypeError, AttributeError, KeyError):
                raise errors.malformed(self.name, call.model, "a frame is not a response") from None
            if chunk.text:
                any_text = True
                yield Delta(chunk.text)
            finish = chunk.finish or finish
            usage = chunk.usage or usage
        if finish is None:
            raise errors.malformed(self.name, call.model, "the stream ended early")
        yield StreamEnd(_finish(finish, any_text, self._who(call.model)), usage)

    def _stream_error(self, call: ProviderCall, data: dict[str, Any], raw: str) -> GatewayError:
        """An error sent inside a 200 stream, classified by its own HTTP-like code."""
        error = data["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, int) and code >= 400:
            return from_status(self.name, call.model, code, {}, raw.encode())
        message = errors.upstream_message(raw.encode()) or "error frame"
        return errors.malformed(self.name, call.model, message)

    async def list_models(self, credential: Credential) -> list[str]:
        headers = self._headers(credential)
        found: set[str] = set()
        token: str | None = None
        # A few pages at most: the listing is small, and a server that kept handing out
        # page tokens must not keep us looping.
        for _ in range(_MAX_MODEL_PAGES):
            params = {"pageSize": str(self.page_size), **({"pageToken": token} if token else {})}
            data = await self._get_models(headers, params)
            try:
                for model in data.get("models") or []:
                    if "generateContent" in (model.get("supportedGenerationMethods") or []):
                        found.add(str(model["name"]).removeprefix("models/"))
                token = data.get("nextPageToken") or None
            except (KeyError, TypeError, AttributeError):
                raise errors.malformed(self.name, "models", "no model list") from None
            if token is None:
                break
        return sorted(found)

    async def _get_models(self, headers: dict[str, str], params: dict[str, str]) -> Any:
        url = f"{self.base_url}/{API_VERSION}/models"
        data = await self.client.json(
            "GET",
            url,
            provider=self.name,
            model="models",
            headers=headers,
            params=params,
            from_status=from_status,
        )
        if not isinstance(data, dict):
            raise errors.malformed(self.name, "models", "no model list")
        return data
