"""A Gemini GenerateContentResponse read into its pieces: the answer's text, its
thoughts (parts marked ``thought``), its function calls, the thought signature, the
finish reason and the usage. A stream frame is a whole response of its own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pluggably.errors import InvalidParameter
from pluggably.messages import ToolCall
from pluggably.providers.base import Usage

# SAFETY, RECITATION, OTHER, … end the answer without being a length cut.
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
# Finish reasons meaning the answer was withheld, not merely cut short: with no answer
# at all the caller gets an error that says so instead of an empty success.
_BLOCKED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"})


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
class Call:
    """A functionCall part: Gemini sends each call whole, ``id`` only on some models."""

    id: str | None
    name: str
    arguments: str  # the args object as JSON text


@dataclass(frozen=True)
class Chunk:
    """One GenerateContentResponse, whole or a stream frame of one."""

    text: str
    finish: str | None  # Google's finishReason, when this response carries one
    usage: Usage | None
    has_candidate: bool
    thoughts: str = ""
    calls: list[Call] = field(default_factory=list)
    signature: str | None = None  # the first thoughtSignature of its parts


def _call(part: dict[str, Any]) -> Call:
    function = part["functionCall"]
    args = function.get("args")
    return Call(
        id=str(function["id"]) if function.get("id") else None,
        name=str(function["name"]),
        arguments=json.dumps(args if isinstance(args, dict) else {}),
    )


def chunk(data: Any, who: str) -> Chunk:
    """The pieces of ``data``; TypeError/KeyError/AttributeError: not a response."""
    if not isinstance(data, dict):
        raise TypeError("not an object")
    candidates = data.get("candidates") or []
    blocked = (data.get("promptFeedback") or {}).get("blockReason")
    if not candidates and blocked:
        raise InvalidParameter(f"{who} blocked the prompt ({blocked}); rephrase it.")
    usage = _usage(data.get("usageMetadata"))
    if not candidates:
        return Chunk("", None, usage, has_candidate=False)
    candidate = candidates[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    texts = [p for p in parts if isinstance(p.get("text"), str)]
    signatures = [str(p["thoughtSignature"]) for p in parts if p.get("thoughtSignature")]
    return Chunk(
        text="".join(p["text"] for p in texts if not p.get("thought")),
        finish=candidate.get("finishReason"),
        usage=usage,
        has_candidate=True,
        thoughts="".join(p["text"] for p in texts if p.get("thought")),
        calls=[_call(p) for p in parts if isinstance(p.get("functionCall"), dict)],
        signature=signatures[0] if signatures else None,
    )


def tool_calls(calls: list[Call]) -> list[ToolCall]:
    """The calls with ids: Gemini's own, or ``call_<n>`` by position where it gave none
    (the ids the Assembly of a stream gives too)."""
    return [
        ToolCall(id=call.id or f"call_{index}", name=call.name, arguments=call.arguments)
        for index, call in enumerate(calls)
    ]


def finish(reason: str, answered: bool, called: bool, who: str) -> str:
    """Our finish reason for Google's; ``answered``: any text or call came."""
    if not answered and reason in _BLOCKED:
        raise InvalidParameter(f"{who} blocked the prompt: no answer was given ({reason}).")
    if called and reason == "STOP":
        return "tool_calls"
    return _FINISH.get(reason, "stop")
