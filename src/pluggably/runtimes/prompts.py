"""Conversations as prompts: a plain transcript for models without a chat template,
the turns a chat template renders (tool calls and tool results included), the tools
described for a model that has no template to take them, and stop sequences."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pluggably.messages import Message, Tool
from pluggably.stops import StopFilter

__all__ = [
    "TURN_MARKERS",
    "AnswerFilter",
    "is_prefill",
    "takes_tools",
    "template_prompt",
    "template_turns",
    "tool_instruction",
    "transcript",
    "with_system",
]

_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
# A base model continues a transcript past its own turn: it invents the next "User:"
# line, or another "Assistant:" one. The answer ends where any turn would begin.
TURN_MARKERS = ["\nUser:", "\nAssistant:", "\nSystem:", "\nTool:"]
_TOOLS = re.compile(r"\btools\b")


def transcript(messages: list[Message]) -> str:
    """A plain transcript ending with the assistant's cue, for base models: each turn
    as ``Role: text`` on its own lines (an assistant's tool calls as JSON lines after
    its text); the model continues after ``Assistant:``. When the last message is the
    assistant's (a prefill), the transcript ends with its text and the model continues
    that text."""
    lines = [f"{_ROLES.get(m.role, m.role.title())}: {_turn_text(m)}" for m in messages]
    return "\n".join(lines if is_prefill(messages) else [*lines, "Assistant:"])


def _turn_text(message: Message) -> str:
    calls = [
        json.dumps({"name": c.name, "arguments": _arguments(c.arguments)}, ensure_ascii=False)
        for c in message.tool_calls
    ]
    return "\n".join(line for line in [message.text, *calls] if line)


def tool_instruction(tools: tuple[Tool, ...], name: str | None) -> str:
    """The tools described for a model with no template that takes them: context for a
    grammar-forced call (the grammar guarantees its shape, this says what it is for)."""
    lines = [
        f"Call the tool '{name}': answer with its arguments as a JSON object."
        if name
        else 'Call one of these tools: answer with {"name": <tool>, "arguments": {...}}.'
    ]
    for tool in tools:
        if name is None or tool.name == name:
            about = f": {tool.description}" if tool.description else ""
            lines.append(
                f"- {tool.name}{about}. Arguments (JSON Schema): {json.dumps(tool.parameters)}"
            )
    return "\n".join(lines)


def with_system(messages: list[Message], text: str) -> list[Message]:
    """``text`` as the conversation's system turn, after the caller's own system text
    when there is one (templates that take a single system turn, first, still do)."""
    if messages and messages[0].role == "system":
        first = messages[0]
        return [Message("system", f"{first.text}\n\n{text}" if first.text else text), *messages[1:]]
    return [Message("system", text), *messages]


def takes_tools(template: str) -> bool:
    """The chat template renders the tools it is given (it refers to ``tools``)."""
    return bool(_TOOLS.search(template))


def template_turns(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as a chat template reads it (Hugging Face's convention): an
    assistant turn's tool calls with their arguments as an object, a tool result with
    the id and name of the call it answers."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    turns: list[dict[str, Any]] = []
    for m in messages:
        turn: dict[str, Any] = {"role": m.role, "content": m.text}
        if m.tool_calls:
            turn["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in m.tool_calls
            ]
        if m.role == "tool":
            turn["tool_call_id"] = m.tool_call_id
            turn["name"] = names.get(m.tool_call_id or "", "")
        turns.append(turn)
    return turns


def _arguments(text: str) -> Any:
    """A call's arguments as an object; the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def is_prefill(messages: list[Message]) -> bool:
    """The conversation ends with the start of the assistant's answer, to be continued
    (Anthropic's prefill): the model writes what follows it, not a new turn."""
    return bool(messages) and messages[-1].role == "assistant"


# Marks the end of a prefill in a chat template's output: the prompt is cut there, so
# it ends with the assistant's partial text and no end of turn.
PREFILL_MARK = "\ue000prefill\ue000"


def template_prompt(render: Callable[[list[dict[str, Any]]], str], messages: list[Message]) -> str:
    """A chat template's prompt for ``messages``; a prefill is left open for the model to
    continue (whatever the template puts after an assistant turn is cut off)."""
    turns = template_turns(messages)
    if not is_prefill(messages):
        return render(turns)
    turns[-1]["content"] += PREFILL_MARK
    prompt = render(turns)
    at = prompt.rfind(PREFILL_MARK)
    return prompt[:at] if at >= 0 else prompt


class AnswerFilter:
    """One answer's text as it is generated, cut at the caller's stop sequences and at
    the runtime's own ``markers`` (a transcript's turn markers). The caller's sequence
    that ended it is ``stop_sequence``; a marker is never shown nor reported, and the
    whitespace in front of it (the blank line before an invented turn) goes with it."""

    def __init__(self, stops: list[str], markers: list[str] | None = None) -> None:
        self.stops = [s for s in stops if s]
        self.markers = [m for m in markers or [] if m not in self.stops]
        self._filter = StopFilter([*self.stops, *self.markers])
        self._spaces = ""  # trailing whitespace held back while a marker may follow
        self.stopped = False
        self.stop_sequence: str | None = None

    def feed(self, text: str) -> str:
        """The text now safe to show (``stopped`` is set once a sequence was reached)."""
        safe, hit = self._filter.feed(text)
        if not hit:
            return self._hold(safe)
        self.stopped = True
        matched = self._filter.matched
        if matched in self.stops:
            self.stop_sequence = matched
            return self._release(safe)
        return self._release(safe).rstrip()

    def flush(self) -> str:
        """The rest, at the end of a generation that reached no stop sequence; less what
        would begin a turn (``"\nUs"`` when the token limit came mid-marker)."""
        rest = self._filter.flush()
        if rest and any(m.startswith(rest) for m in self.markers):
            return self._release("").rstrip()
        return self._release(rest)

    def _hold(self, safe: str) -> str:
        if not self.markers:
            return safe
        text = self._spaces + safe
        body = text.rstrip()
        self._spaces = text[len(body) :]
        return body

    def _release(self, safe: str) -> str:
        text, self._spaces = self._spaces + safe, ""
        return text
