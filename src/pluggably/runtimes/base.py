"""The local runtime protocol. A runtime wraps one model's blocking library (llama.cpp,
transformers, diffusers, Shap-E). The scheduler (lifecycle/) owns runtimes and calls
every method below from a worker thread, never on the event loop; a runtime therefore
only has to be correct when one thread at a time calls load/unload, and one generation
runs per runtime at a time (the scheduler admits ``parallel`` requests, 1 by default).

Cancellation is cooperative and real: ``cancel`` is a ``threading.Event`` that the
runtime checks between tokens or diffusion steps; when it is set the runtime stops and
returns what it has with ``finish_reason="cancelled"``."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pluggably.deltas import ReasoningDelta, ToolCallDelta
from pluggably.messages import NO_FEATURES, Features, Message, ToolCall

# What a text runtime's stream yields: text, or a tool call's / reasoning's fragment.
Piece = str | ToolCallDelta | ReasoningDelta


@dataclass
class LocalCall:
    """One generation: the conversation (images ride on the last user message, as
    base64 in ``Message.images``) and parameters already validated against the
    model's schema (text: temperature, max_tokens, top_p, stop, seed, format; image:
    width, height, num_inference_steps, guidance_scale, negative_prompt, num_images,
    strength, seed; 3d: num_inference_steps, guidance_scale, output_format, seed), and
    what the call asks beyond them (tools, tool choice, output format)."""

    messages: list[Message]
    parameters: dict[str, Any] = field(default_factory=dict)
    modality: str = "text"
    features: Features = NO_FEATURES
    # modality "embedding": the texts to embed (``messages`` is then empty);
    # ``parameters`` may hold ``dimensions`` and ``normalize``.
    texts: list[str] = field(default_factory=list)


@dataclass
class LocalResult:
    text: str | None = None
    images: list[bytes] = field(default_factory=list)  # PNG files
    mesh: bytes | None = None  # the mesh file, in mesh_format
    mesh_format: str | None = None  # obj | glb | ply
    preview: bytes | None = None  # PNG preview of a mesh
    finish_reason: str = "stop"  # stop | length | tool_calls | cancelled
    stop_sequence: str | None = None  # the caller's stop sequence that ended the text
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    embeddings: list[list[float]] = field(default_factory=list)  # one per text, in order


@dataclass(frozen=True)
class ModelSpec:
    """What a runtime needs to know of a registered model."""

    model_id: str
    path: Path  # a .gguf file or a model folder
    format: str  # gguf | transformers | diffusers | shap_e
    modality: str
    size_bytes: int | None = None


class Runtime(Protocol):
    kind: str  # llama_cpp | transformers | diffusers | shap_e

    @property
    def memory_bytes(self) -> int:
        """Memory the loaded model holds (an estimate from the files before load)."""
        ...

    def load(self) -> None:
        """Read the weights. Raises ``BackendUnavailable`` with a message a user can act
        on when the files are unusable."""
        ...

    def unload(self) -> None:
        """Drop every reference to the weights; load() may be called again later."""
        ...

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult: ...

    def stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[Piece, None, LocalResult]:
        """Text runtimes: yield text pieces (and tool-call fragments) as tokens are
        produced, then return the LocalResult (its ``text`` and ``tool_calls`` are the
        whole answer). Other runtimes may raise ``FeatureNotSupported``."""
        ...


def run_out(pieces: Generator[Piece, None, LocalResult]) -> LocalResult:
    """The LocalResult a text stream returns, read to its end with the pieces dropped:
    how a text runtime's ``generate`` is its ``stream`` without a reader."""
    while True:
        try:
            next(pieces)
        except StopIteration as done:
            result: LocalResult = done.value
            return result


@runtime_checkable
class CountsTokens(Protocol):
    """Text runtimes also count tokens with their own tokenizer (None: not loaded)."""

    def count_tokens(self, text: str) -> int | None: ...


@runtime_checkable
class CountsPrompts(Protocol):
    """A text runtime that counts a call's whole prompt (template, tools and all) as
    its generation would feed it (None: not loaded)."""

    def prompt_tokens(self, call: LocalCall) -> int | None: ...


class RuntimeFactory(Protocol):
    def __call__(self, spec: ModelSpec) -> Runtime: ...
