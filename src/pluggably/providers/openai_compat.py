"""Every vendor that speaks OpenAI's chat-completions protocol: OpenAI, Azure
OpenAI, xAI, DeepSeek, Groq, the Hugging Face router, and operator-configured
servers (vLLM, llama.cpp server, Ollama, …).

A conversation that ends with an assistant message (a prefill, as Anthropic's API
continues it) is sent as it is: the protocol has no standard way to ask for a
continuation. llama.cpp's server and Ollama continue a trailing assistant message;
OpenAI's models answer after it as a new turn; vLLM needs its own
``continue_final_message`` flag, which other servers would refuse, so it is not sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from pluggably.errors import ProviderNotConfigured
from pluggably.messages import NO_FEATURES, Features, Message, ToolCall
from pluggably.netguard import check_public_url
from pluggably.providers import errors, openai_embeddings
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
from pluggably.providers.sse import events
from pluggably.providers.streaming import StreamingProvider, StreamRequest
from pluggably.providers.upstream import Upstream
from pluggably.stops import as_list

_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the legacy name some servers still send
}
AZURE_API_VERSION = "2024-10-21"
# OpenAI's chat completions take at most 4 stop sequences (a longer list is a 400), and
# the vendors that copy its API (Azure, xAI, Groq, …) the same or fewer; the first 4 go
# upstream and the gateway cuts the answer at the others itself.
VENDOR_MAX_STOPS = 4


def _content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    parts += [{"type": "image_url", "image_url": {"url": img.data_url}} for img in message.images]
    return parts


def _message(message: Message) -> dict[str, Any]:
    """A chat message on the wire. An assistant turn's reasoning is not sent back: the
    vendors that return it (DeepSeek above all) refuse ``reasoning_content`` in input."""
    if message.tool_calls:
        return {
            "role": "assistant",
            "content": message.text or None,
            "tool_calls": [call.as_openai() for call in message.tool_calls],
        }
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.text}
    return {"role": message.role, "content": _content(message)}


def _features(body: dict[str, Any], features: Features, *, azure: bool) -> None:
    """The request's tools, tool choice, output format and reasoning effort, in
    OpenAI's fields."""
    if features.tools:
        body["tools"] = [tool.as_openai() for tool in features.tools]
        choice = features.tool_choice
        if choice.mode == "function":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice.mode != "auto":  # auto is the API's default once tools are given
            body["tool_choice"] = choice.mode
        if features.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = features.parallel_tool_calls
    fmt = features.response_format
    if fmt is not None and fmt.type == "json_schema":
        spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        if fmt.description:
            spec["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    effort = features.reasoning.effort if features.reasoning else None
    # Azure's GA api-version refuses reasoning_effort (it came with a later preview).
    if effort and not azure:
        body["reasoning_effort"] = effort


def chat_body(
    call: ProviderCall, *, stream: bool, max_stops: int | None = None, azure: bool = False
) -> dict[str, Any]:
    """The chat-completions body; of the stop sequences at most ``max_stops`` (the rest
    are the gateway's to apply)."""
    body: dict[str, Any] = {
        "model": call.model,
        "messages": [_message(m) for m in call.messages],
    }
    params = call.parameters
    for name in ("temperature", "top_p", "seed"):
        if params.get(name) is not None:
            body[name] = params[name]
    stops = as_list(params.get("stop"))
    if stops:
        body["stop"] = stops[:max_stops]
    if params.get("max_tokens") is not None:
        body["max_tokens"] = params["max_tokens"]
    if params.get("format") == "json":
        body["response_format"] = {"type": "json_object"}
    if call.features is not NO_FEATURES:
        _features(body, call.features, azure=azure)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    return [
        ToolCall(
            id=str(call.get("id") or f"call_{index}"),
            name=str(call["function"]["name"]),
            arguments=_json_text(call["function"].get("arguments")) or "{}",
        )
        for index, call in enumerate(message.get("tool_calls") or [])
    ]


def _json_text(arguments: Any) -> str:
    """Arguments as JSON text: some servers send them as an object."""
    if arguments is None or isinstance(arguments, str):
        return arguments or ""
    return json.dumps(arguments)


class _Fragments:
    """One stream's tool-call fragments made regular, as OpenAI sends them: an index
    where the server sends none (Ollama, Gemini's OpenAI endpoint: a fragment with a new
    id starts the next call, one without continues the last), and id and name only in a
    call's first fragment (some servers repeat them in every fragment, which clients
    that join the pieces would double)."""

    def __init__(self) -> None:
        self.ids: dict[int, str] = {}  # index -> the call's id, once sent
        self.named: set[int] = set()  # indexes whose name was sent
        self.last = -1  # the index of the call being continued

    def regular(self, fragment: dict[str, Any]) -> ToolCallDelta:
        function = fragment.get("function") or {}
        call_id, name = fragment.get("id"), function.get("name")
        index = fragment.get("index")
        if index is None:
            new = call_id is not None and call_id != self.ids.get(self.last)
            index = self.last + 1 if new or self.last < 0 else self.last
        index = int(index)
        self.last = index
        if call_id is not None and index not in self.ids:
            self.ids[index] = str(call_id)
        else:
            call_id = None
        if name and index not in self.named:
            self.named.add(index)
        else:
            name = None
        return ToolCallDelta(index, call_id, name, _json_text(function.get("arguments")))


def _reasoning(message: dict[str, Any]) -> str | None:
    """DeepSeek's and xAI's ``reasoning_content``, or OpenRouter's ``reasoning``."""
    text = message.get("reasoning_content") or message.get("reasoning")
    return text if isinstance(text, str) and text else None


def _usage(data: Any) -> Usage | None:
    return Usage.read(data, "prompt_tokens", "completion_tokens")


class OpenAICompatProvider(StreamingProvider):
    modalities: frozenset[str]

    def __init__(
        self,
        name: str,
        client: Upstream,
        base_url: str | None,
        *,
        azure: bool = False,
        image_generation: bool = False,
        embeddings: bool = False,
        max_stops: int | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/") if base_url else None
        self.azure = azure
        self.max_stops = max_stops  # None: the server takes any number (vLLM, llama.cpp)
        offered = {"image": image_generation, "embedding": embeddings}
        self.modalities = frozenset({"text", *(m for m, on in offered.items() if on)})

    def ignores(self, model: str, features: Features) -> str | None:
        """The reasoning the protocol cannot carry: a token budget (it has an effort
        only), and on Azure's GA api-version the effort too."""
        spec = features.reasoning
        if spec is None:
            return None
        if self.azure and spec.effort:
            return (
                f"'reasoning' was ignored: Azure OpenAI's api-version {AZURE_API_VERSION} takes"
                " no reasoning effort."
            )
        if spec.max_tokens is not None:
            return (
                f"'reasoning.max_tokens' was ignored: {self.name} takes a reasoning effort"
                " (low, medium, high), not a token budget."
            )
        return None

    # addressing
    def _url(self, credential: Credential, model: str, path: str) -> tuple[str, dict[str, str]]:
        key = str(credential.get("api_key") or "")
        if self.azure:
            endpoint = str(credential.get("endpoint") or self.base_url or "").rstrip("/")
            if not endpoint:
                raise ProviderNotConfigured("Azure OpenAI needs an endpoint with the key.")
            deployment = quote(model, safe="")  # a model name must not rewrite the path
            url = (
                f"{endpoint}/openai/deployments/{deployment}{path}?api-version={AZURE_API_VERSION}"
            )
            return url, {"api-key": key}
        base = self.base_url or ""
        if not base:
            raise ProviderNotConfigured(f"No base URL is configured for {self.name}.")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return f"{base.rstrip('/')}{path}", headers

    async def _guard(self, credential: Credential) -> bool:
        """Whether the call goes to a user-supplied Azure endpoint. That URL was vetted
        when stored; it is vetted again right before the call (a literal address), and
        the connection itself goes to public addresses only (a name that resolves
        elsewhere since, or between the check and the connect)."""
        if self.azure and credential.get("endpoint"):
            await check_public_url(str(credential["endpoint"]), allow_private=False)
            return True
        return False

    async def _post(
        self, call: ProviderCall, credential: Credential, path: str, body: dict[str, Any]
    ) -> Any:
        public_only = await self._guard(credential)
        url, headers = self._url(credential, call.model, path)
        return await self.client.json(
            "POST",
            url,
            provider=self.name,
            model=call.model,
            headers=headers,
            body=body,
            public_only=public_only,
        )

    # the protocol
    async def complete(self, call: ProviderCall, credential: Credential) -> Completion:
        if call.modality == "image":
            return await self._image(call, credential)
        if call.modality == "embedding":
            return await self._embed(call, credential)
        data = await self._post(
            call, credential, "/chat/completions", self._body(call, stream=False)
        )
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            finish = _FINISH.get(choice.get("finish_reason") or "stop", "stop")
            calls = _tool_calls(message)
        except (KeyError, IndexError, TypeError, AttributeError):
            raise errors.malformed(self.name, call.model, "no choices") from None
        return Completion(
            text=text,
            finish_reason=finish,
            usage=_usage(data.get("usage")),
            upstream_model=data.get("model"),
            tool_calls=calls,
            reasoning=_reasoning(message),
        )

    def _body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        return chat_body(call, stream=stream, max_stops=self.max_stops, azure=self.azure)

    async def _image(self, call: ProviderCall, credential: Credential) -> Completion:
        params = call.parameters
        body: dict[str, Any] = {
            "model": call.model,
            "prompt": call.messages[-1].text if call.messages else "",
            "n": params.get("num_images", 1),
            "response_format": "b64_json",
        }
        if params.get("width") and params.get("height"):
            body["size"] = f"{params['width']}x{params['height']}"
        data = await self._post(call, credential, "/images/generations", body)
        try:
            images = [str(item["b64_json"]) for item in data["data"]]
        except (KeyError, TypeError):
            raise errors.malformed(self.name, call.model, "no images") from None
        return Completion(text=None, finish_reason="stop", images=images)

    async def _embed(self, call: ProviderCall, credential: Credential) -> Completion:
        """``POST /embeddings`` (for Azure, of the deployment named by the model), in
        runs of at most the inputs OpenAI takes at once."""
        vectors: list[Any] = []
        counts: list[int | None] = []
        upstream_model = None
        for texts in batches(call.texts, openai_embeddings.MAX_INPUTS):
            body = openai_embeddings.embeddings_body(call, texts)
            data = await self._post(call, credential, "/embeddings", body)
            got, tokens = openai_embeddings.read_embeddings(data, self.name, call.model)
            if len(got) != len(texts):
                got_n = f"{len(got)} embeddings for {len(texts)} inputs"
                raise errors.malformed(self.name, call.model, got_n)
            vectors += got
            counts.append(tokens)
            upstream_model = data.get("model") if isinstance(data, dict) else None
        return embedding_answer(self.name, call, vectors, total(counts), upstream_model)

    async def _stream_request(self, call: ProviderCall, credential: Credential) -> StreamRequest:
        public_only = await self._guard(credential)
        url, headers = self._url(credential, call.model, "/chat/completions")
        body = self._body(call, stream=True)
        return StreamRequest(url, headers, body, public_only=public_only)

    async def _frames(
        self, call: ProviderCall, lines: AsyncIterator[str]
    ) -> AsyncIterator[StreamItem]:
        finish, usage, done = "stop", None, False
        fragments = _Fragments()
        async for event in events(lines):
            if event.data == "[DONE]":
                done = True
                break
            chunk = self._frame(call, event)
            if isinstance(chunk, dict) and "error" in chunk:
                raise errors.malformed(
                    self.name,
                    call.model,
                    errors.upstream_message(event.data.encode()) or "error frame",
                )
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                # A plain text delta ({"content": …}) skips the look for anything else.
                if not text or len(delta) > 1:
                    for item in self._extras(call, delta, fragments):
                        yield item
                if text:
                    yield Delta(text)
                if choice.get("finish_reason"):
                    finish = _FINISH.get(choice["finish_reason"], "stop")
        if not done:
            raise errors.malformed(self.name, call.model, "the stream ended early")
        yield StreamEnd(finish_reason=finish, usage=usage)

    def _extras(
        self, call: ProviderCall, delta: dict[str, Any], fragments: _Fragments
    ) -> list[StreamItem]:
        """A delta's reasoning and tool-call fragments (made regular by ``fragments``)."""
        items: list[StreamItem] = []
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if thought and isinstance(thought, str):
            items.append(ReasoningDelta(thought))
        for fragment in delta.get("tool_calls") or ():
            try:
                items.append(fragments.regular(fragment))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise errors.malformed(self.name, call.model, "a bad tool-call delta") from None
        return items

    async def list_models(self, credential: Credential) -> list[str]:
        public_only = await self._guard(credential)
        url, headers = self._url(credential, "models", "/models")
        data = await self.client.json(
            "GET", url, provider=self.name, model="models", headers=headers, public_only=public_only
        )
        try:
            return sorted(str(m["id"]) for m in data["data"])
        except (KeyError, TypeError):
            raise errors.malformed(self.name, "models", "no model list") from None
