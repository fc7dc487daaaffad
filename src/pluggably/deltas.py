"""The pieces of a streamed answer beyond its text (tool-call fragments, reasoning),
and the assembly of every piece into the whole answer. Providers and local runtimes
produce them; the candidate loop passes them on as events and assembles them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pluggably.messages import ToolCall


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of the ``index``-th tool call: ``id`` and ``name`` come in its first
    fragment, the arguments' JSON text in pieces (OpenAI's chunk shape)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's visible reasoning; ``signature`` (Anthropic) comes once,
    when the reasoning block ends, and has no text."""

    text: str
    signature: str | None = None


@dataclass
class Assembly:
    """An answer's pieces gathered as they stream: its text, its tool calls (fragments
    joined by index), its reasoning and that reasoning's signature."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    signature: str | None = None
    _calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args]

    def add(self, delta: ToolCallDelta | ReasoningDelta) -> None:
        if isinstance(delta, ToolCallDelta):
            self.tool_call(delta)
        else:
            self.reasoning_delta(delta)

    def tool_call(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, ["", "", ""])
        if delta.id:
            call[0] = delta.id
        if delta.name:
            call[1] = delta.name
        call[2] += delta.arguments

    def reasoning_delta(self, delta: ReasoningDelta) -> None:
        if delta.text:
            self.reasoning.append(delta.text)
        if delta.signature:
            self.signature = delta.signature

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(id=call_id or f"call_{index}", name=name, arguments=args or "{}")
            for index, (call_id, name, args) in sorted(self._calls.items())
        ]

    @property
    def reasoning_text(self) -> str | None:
        return "".join(self.reasoning) if self.reasoning else None
