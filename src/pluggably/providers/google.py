"""Google Gemini over the Generative Language API (v1beta): ``generateContent``,
``streamGenerateContent?alt=sse``, ``batchEmbedContents`` and the model list."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from pluggably.errors import FeatureNotSupported, GatewayError, ProviderNotConfigured
from pluggably.messages import Features, signed
from pluggably.providers import errors, google_embeddings
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
from pluggably.providers.embeddings import batches, embedding_answer, total
from pluggably.providers.google_reading import Chunk, chunk, finish, tool_calls
from pluggably.providers.google_request import GOOGLE, MAX_STOPS, generate_body, thinks
from pluggably.providers.sse import events
from pluggably.providers.streaming import StreamingProvider, StreamRequest
from pluggably.providers.upstream import Upstream

API_VERSION = "v1beta"
_MAX_MODEL_PAGES = 5
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


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
    modalities = frozenset({"text", "embedding"})
    max_stops: int | None = MAX_STOPS
    page_size = 1000  # the most GET models hands out at once

    def __init__(self, name: str, client: Upstream, base_url: str) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/")

    def _who(self, model: str) -> str:
        return f"{self.name} ({model})"

    def ignores(self, model: str, features: Features) -> str | None:
        if features.reasoning is not None and not thinks(model):
            return f"'reasoning' was ignored: {model} does not think (Gemini 2.5 and later do)."
        return None

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
        if call.modality == "embedding":
            return await self._embed(call, credential)
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
        got = self._chunk(call, data, "not a GenerateContentResponse")
        if not got.has_candidate:
            raise errors.malformed(self.name, call.model, "no candidates")
        answered = bool(got.text or got.calls)
        who = self._who(call.model)
        return Completion(
            text=got.text,
            finish_reason=finish(got.finish or "STOP", answered, bool(got.calls), who),
            usage=got.usage,
            upstream_model=data.get("modelVersion"),
            tool_calls=tool_calls(got.calls),
            reasoning=got.thoughts or None,
            reasoning_signature=signed(GOOGLE, got.signature),
        )

    async def _embed(self, call: ProviderCall, credential: Credential) -> Completion:
        """One ``batchEmbedContents`` call per run of at most the texts it takes."""
        headers = self._headers(credential)
        url = self._url(call.model, "batchEmbedContents")
        vectors: list[Any] = []
        counts: list[int | None] = []
        for texts in batches(call.texts, google_embeddings.MAX_INPUTS):
            data = await self.client.json(
                "POST",
                url,
                provider=self.name,
                model=call.model,
                headers=headers,
                body=google_embeddings.batch_body(call, texts),
                from_status=from_status,
            )
            got, tokens = google_embeddings.read_batch(data, self.name, call.model, texts)
            vectors += got
            counts.append(tokens)
        return embedding_answer(self.name, call, vectors, total(counts))

    def _chunk(self, call: ProviderCall, data: Any, what: str) -> Chunk:
        try:
            return chunk(data, self._who(call.model))
        except (TypeError, AttributeError, KeyError):
            raise errors.malformed(self.name, call.model, what) from None

    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        headers = self._headers(credential)
        url = self._url(call.model, "streamGenerateContent") + "?alt=sse"
        return StreamRequest(url, headers, generate_body(call), from_status=from_status)

    async def _frames(
        self, call: ProviderCall, lines: AsyncIterator[str]
    ) -> AsyncIterator[StreamItem]:
        """Every frame is a whole GenerateContentResponse; there is no [DONE]: only a
        finishReason tells a finished stream from a cut one. Gemini sends each function
        call whole, so each is one ToolCallDelta with all its arguments."""
        reason: str | None = None
        usage: Usage | None = None
        answered = False
        calls = 0
        signature: str | None = None
        async for event in events(lines):
            data = self._frame(call, event)
            if isinstance(data, dict) and "error" in data:
                raise self._stream_error(call, data, event.data)
            got = self._chunk(call, data, "a frame is not a response")
            if got.thoughts:
                yield ReasoningDelta(got.thoughts)
            if got.text:
                yield Delta(got.text)
            for found in got.calls:
                yield ToolCallDelta(calls, found.id or f"call_{calls}", found.name, found.arguments)
                calls += 1
            answered = answered or bool(got.text or got.calls)
            signature = signature or got.signature
            reason = got.finish or reason
            usage = got.usage or usage
        if reason is None:
            raise errors.malformed(self.name, call.model, "the stream ended early")
        if signature is not None:
            yield ReasoningDelta("", signature=signed(GOOGLE, signature))
        yield StreamEnd(finish(reason, answered, calls > 0, self._who(call.model)), usage)

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
                    # Generators and embedders (modality told by the name: providers/
                    # embeddings.py); not the AQA or token-counting-only models.
                    methods = model.get("supportedGenerationMethods") or []
                    if "generateContent" in methods or "embedContent" in methods:
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
