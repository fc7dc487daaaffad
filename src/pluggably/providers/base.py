"""The provider protocol and the vendor-neutral shapes adapters translate from/to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pluggably.deltas import ReasoningDelta as ReasoningDelta
from pluggably.deltas import ToolCallDelta as ToolCallDelta
from pluggably.messages import NO_FEATURES, Features, Message, ToolCall


@dataclass
class ProviderCall:
    """One upstream call: the vendor's model name, the conversation, parameters
    already validated against the model's schema, and what the call asks beyond them
    (tools, tool choice, output format, reasoning)."""

    model: str
    messages: list[Message]
    parameters: dict[str, Any] = field(default_factory=dict)
    modality: str = "text"
    features: Features = NO_FEATURES
    # modality "embedding": the texts to embed (``messages`` is then empty);
    # ``parameters`` may hold ``dimensions`` and ``normalize``.
    texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def read(cls, data: Any, prompt: str, completion: str) -> Usage | None:
        """A vendor's usage object, by the names of its two counts; None unless it has
        both, as integers."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data[prompt]), int(data[completion]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class Completion:
    text: str | None
    finish_reason: str  # stop | length | tool_calls | error
    usage: Usage | None = None
    images: list[str] = field(default_factory=list)  # base64 PNG/JPEG
    upstream_model: str | None = None
    mesh: str | None = None  # base64 mesh file (local 3D models)
    mesh_format: str | None = None  # obj | glb | ply
    preview: bytes | None = None  # PNG preview of the mesh
    stop_sequence: str | None = None  # the caller's stop sequence that ended the text
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None  # the model's visible reasoning
    reasoning_signature: str | None = None  # its vendor's signature (Anthropic)
    embeddings: list[list[float]] = field(default_factory=list)  # one per text, in order


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class StreamEnd:
    finish_reason: str
    usage: Usage | None
    stop_sequence: str | None = None  # the caller's stop sequence that ended the text


StreamItem = Delta | ToolCallDelta | ReasoningDelta | StreamEnd
Credential = dict[str, Any]


class Provider(Protocol):
    """A remote backend. Adapters raise ``GatewayError``s naming provider and model."""

    name: str
    modalities: frozenset[str]
    # The most stop sequences the upstream applies itself (None: any number); the
    # gateway cuts the answer at the rest.
    max_stops: int | None

    def unable(self, model: str, features: Features) -> str | None:
        """Why ``model`` cannot do what ``features`` ask (tools, a JSON schema, …), in
        words for a user; None when it can. A candidate that cannot is skipped."""
        ...

    def ignores(self, model: str, features: Features) -> str | None:
        """What of ``features`` ``model`` leaves out (reasoning on a model that does not
        reason), as a warning for the response; None: nothing."""
        ...

    async def complete(self, call: ProviderCall, credential: Credential) -> Completion:
        """The whole answer: text (and tool calls, reasoning), images, or with modality
        ``embedding`` one vector per ``call.texts`` in ``Completion.embeddings``."""
        ...

    def stream(self, call: ProviderCall, credential: Credential) -> AsyncIterator[StreamItem]:
        """Text, tool-call and reasoning deltas as the upstream produces them, then
        exactly one ``StreamEnd``."""
        ...

    async def list_models(self, credential: Credential) -> list[str]: ...
