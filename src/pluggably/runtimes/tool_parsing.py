"""Tool calls in a model's free text, in the formats chat templates teach their models:
Hermes and Qwen 2.5/3 (``<tool_call>{"name", "arguments"}</tool_call>``, several in a
row, after optional text), Llama 3.x (the whole answer one JSON object with ``name``
and ``parameters``, or the same after ``<|python_tag|>``; Llama 3.2 also writes Python
calls, ``[get_weather(city="Paris")]``) and Mistral (``[TOOL_CALLS][{...}]``). This
serves ``tool_choice: auto``, where the model decides whether to call; a forced call is
grammar-constrained and needs no parsing.

A call counts only when it names one of the offered tools and its arguments are a JSON
object: anything else stays text, as the model wrote it."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["CallWatch", "Parsed", "ParsedCall", "parse_tool_calls"]

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_TAG = "[TOOL_CALLS]"
# What a call may begin with anywhere in an answer, and only at its start.
_TAGS = (HERMES_OPEN, PYTHON_TAG, MISTRAL_TAG)
_STARTS = (*_TAGS, "{", "[")
_HERMES = re.compile(re.escape(HERMES_OPEN) + r"(.*?)(?:" + re.escape(HERMES_CLOSE) + r"|$)", re.S)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # the arguments object's JSON text


@dataclass(frozen=True)
class Parsed:
    text: str  # what the model wrote outside its calls
    calls: tuple[ParsedCall, ...] = ()


def parse_tool_calls(text: str, names: Collection[str]) -> Parsed:
    """The calls to the tools ``names`` in ``text`` and the text around them; no calls
    (and ``text`` unchanged) when it holds none in a known format."""
    stripped = text.strip()
    if HERMES_OPEN in text:
        return _hermes(text, names) or Parsed(text)
    for tag in (PYTHON_TAG, MISTRAL_TAG):
        if stripped.startswith(tag):
            calls = _json_calls(stripped.removeprefix(tag), names)
            return Parsed("", calls) if calls else Parsed(text)
    if stripped.startswith(("{", "[")):
        calls = _json_calls(stripped, names) or _pythonic_calls(stripped, names)
        return Parsed("", calls) if calls else Parsed(text)
    return Parsed(text)


def _hermes(text: str, names: Collection[str]) -> Parsed | None:
    calls: list[ParsedCall] = []
    for body in _HERMES.findall(text):
        found = _json_calls(body.strip(), names)
        if not found:
            return None
        calls.extend(found)
    outside = _HERMES.sub("", text).strip()
    return Parsed(outside, tuple(calls))


def _json_calls(text: str, names: Collection[str]) -> tuple[ParsedCall, ...]:
    """The calls in ``text`` when all of it is JSON call objects (or lists of them),
    separated by whitespace, commas or semicolons; () otherwise."""
    values: list[Any] = []
    at = 0
    while at < len(text):
        try:
            value, at = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            return ()
        values.extend(value if isinstance(value, list) else [value])
        while at < len(text) and text[at] in " \t\r\n;,":
            at += 1
    calls = [_call(v, names) for v in values]
    if not calls or any(c is None for c in calls):
        return ()
    return tuple(c for c in calls if c is not None)


def _pythonic_calls(text: str, names: Collection[str]) -> tuple[ParsedCall, ...]:
    """Llama 3.2's list of Python calls with literal keyword arguments,
    ``[get_weather(city="Paris"), get_time(tz="CET")]``; () for anything else."""
    try:
        tree = ast.parse(text, mode="eval").body
        if not isinstance(tree, ast.List):
            return ()
        calls = [_pythonic(node, names) for node in tree.elts]
    except (SyntaxError, ValueError, RecursionError):  # not Python, or not literals
        return ()
    if not calls or any(c is None for c in calls):
        return ()
    return tuple(c for c in calls if c is not None)


def _pythonic(node: ast.expr, names: Collection[str]) -> ParsedCall | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.args:
        return None
    if node.func.id not in names or any(k.arg is None for k in node.keywords):
        return None
    arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return ParsedCall(node.func.id, json.dumps(arguments, ensure_ascii=False))


def _call(value: Any, names: Collection[str]) -> ParsedCall | None:
    """One call object: ``{name, arguments|parameters}``, or OpenAI's
    ``{type: function, function: {name, arguments}}``."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # already JSON text (OpenAI's own shape)
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(arguments, dict):
        return None
    return ParsedCall(name, json.dumps(arguments, ensure_ascii=False))


class CallWatch:
    """An answer's text as it streams, held back from the moment it may be a tool
    call: when it begins with a call's opening (``{``, ``[``, a tag), or reaches a tag
    later on. What was held is parsed when the answer ends (``rest``)."""

    def __init__(self) -> None:
        self._pending = ""  # text not shown yet
        self._started = False  # some text was shown: a bare JSON call can no longer begin
        self.holding = False  # a call began: everything from here waits for the end

    def feed(self, text: str) -> str:
        """The text now safe to show."""
        self._pending += text
        if self.holding:
            return ""
        if not self._started:
            return self._opening()
        return self._middle()

    def rest(self) -> str:
        """What was held back, at the end of the answer."""
        rest, self._pending = self._pending, ""
        return rest

    def _opening(self) -> str:
        head = self._pending.lstrip()
        if head.startswith(_STARTS):
            self.holding = True
            return ""
        if not head or any(s.startswith(head) for s in _STARTS):
            return ""  # too early to tell
        self._started = True
        return self._middle()

    def _middle(self) -> str:
        text = self._pending
        found = [at for at in (text.find(t) for t in _TAGS) if at >= 0]
        if found:
            cut = min(found)
            self.holding = True
        else:  # keep what may be the start of a tag
            cut = len(text) - max((_overlap(text, t) for t in _TAGS), default=0)
        self._pending = text[cut:]
        return text[:cut]


def _overlap(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that begins ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
