"""A Responses request's ``input`` as the items stored with the response (each with
its id, in the shape ``input_items`` lists), and a conversation of such items (the
stored chain, then the request's own) as the native ``input.messages``.

Native turns: user, system (``system`` and ``developer``), an assistant turn made of
its reasoning, its text and its function calls (consecutive items of one answer), and
a ``tool`` turn per ``function_call_output``. Images (``input_image``, data: URLs)
ride on the native request, as on chat completions."""

from __future__ import annotations

from typing import Any

from pluggably.errors import FeatureNotSupported
from pluggably.ids import new_id
from pluggably.surfaces.openai.fields import field_error
from pluggably.surfaces.openai.responses_shapes import ResponsesContentPart, ResponsesInputItem

Item = dict[str, Any]
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")


def stored_items(given: str | list[ResponsesInputItem]) -> list[Item]:
    """The request's items, checked, each with an id (the client's, or a new one)."""
    if isinstance(given, str):
        return [_message(0, ResponsesInputItem(role="user", content=given))] if given else []
    return [_item(i, item) for i, item in enumerate(given)]


def refuse_duplicates(conversation: list[Item], items: list[Item]) -> None:
    """Every item of a conversation has its own id, as OpenAI insists: ``input_items``
    pages by id (``after``), and an answer sent back beside ``previous_response_id``
    would be said twice."""
    seen = {item["id"] for item in conversation}
    for i, item in enumerate(items):
        if item["id"] in seen:
            raise field_error(
                ["input", i, "id"],
                f"Duplicate item found with id '{item['id']}'. Remove duplicate items from "
                "your input and try again.",
            )
        seen.add(item["id"])


def _item(i: int, item: ResponsesInputItem) -> Item:
    kind = item.type or "message"
    if kind == "message":
        return _message(i, item)
    if kind == "function_call":
        name, arguments = _required(i, item, "name"), _required(i, item, "arguments")
        return {
            "id": item.id or new_id("fc"),
            "type": "function_call",
            "call_id": _required(i, item, "call_id"),
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
    if kind == "function_call_output":
        output = item.output if isinstance(item.output, str) else None
        if isinstance(item.output, list):
            output = "\n".join(_text(i, j, p, "output") for j, p in enumerate(item.output))
        if output is None:
            raise field_error(["input", i, "output"], "A function_call_output needs output.")
        return {
            "id": item.id or new_id("fco"),
            "type": "function_call_output",
            "call_id": _required(i, item, "call_id"),
            "output": output,
            "status": "completed",
        }
    if kind == "reasoning":
        summary = [
            {"type": "summary_text", "text": _text(i, j, p, "summary")}
            for j, p in enumerate(item.summary or [])
        ]
        return {"id": item.id or new_id("rs"), "type": "reasoning", "summary": summary}
    raise field_error(
        ["input", i, "type"],
        f"Input items of type '{kind}' are not supported here; send messages, "
        "function_call, function_call_output and reasoning items.",
        FeatureNotSupported,
    )


def _required(i: int, item: ResponsesInputItem, field: str) -> str:
    value = getattr(item, field)
    if value is None:
        raise field_error(["input", i, field], f"A {item.type} item needs {field}.")
    return str(value)


def _message(i: int, item: ResponsesInputItem) -> Item:
    if item.role is None:
        raise field_error(["input", i, "role"], "A message needs a role.")
    if item.content is None:
        raise field_error(["input", i, "content"], "A message needs content.")
    assistant = item.role == "assistant"
    given = item.content
    parts = (
        [ResponsesContentPart(type="input_text", text=given)] if isinstance(given, str) else given
    )
    content = [_part(i, j, p, assistant) for j, p in enumerate(parts)]
    return {
        "id": item.id or new_id("msg"),
        "type": "message",
        "role": item.role,
        "status": "completed",
        "content": content,
    }


def _part(i: int, j: int, part: ResponsesContentPart, assistant: bool) -> Item:
    if part.type == "refusal" and assistant:
        return {"type": "refusal", "refusal": part.refusal or ""}
    if part.type == "input_image" and not assistant:
        return {"type": "input_image", "image_url": _image(i, j, part), "detail": "auto"}
    text = _text(i, j, part, "content")
    if assistant:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def _text(i: int, j: int, part: ResponsesContentPart, field: str) -> str:
    if part.type not in _TEXT_PARTS or part.text is None:
        raise field_error(
            ["input", i, field, j, "type"],
            f"Content parts of type '{part.type}' are not supported here (text parts, and "
            "input_image on user messages, are).",
            FeatureNotSupported,
        )
    return part.text


def _image(i: int, j: int, part: ResponsesContentPart) -> str:
    url = part.image_url
    if url is None or not url.startswith("data:"):
        raise field_error(
            ["input", i, "content", j, "image_url"],
            "Images are not fetched or looked up here; send image_url as a data: URL (base64).",
            FeatureNotSupported,
        )
    return url


# the native conversation
def native_messages(items: list[Item]) -> tuple[list[Item], list[str]]:
    """The native messages of a conversation of stored items, and its images."""
    messages: list[Item] = []
    images: list[str] = []
    answer: Item = {}  # the assistant turn being gathered

    def flush() -> None:
        if answer.get("content") or answer.get("tool_calls"):
            messages.append({"role": "assistant", "content": None, **answer})
        answer.clear()

    for item in items:
        kind = item["type"]
        if kind == "function_call":
            call = {"name": item["name"], "arguments": item["arguments"]}
            answer.setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function", "function": call}
            )
            continue
        if kind in ("reasoning", "message") and (answer.get("content") or answer.get("tool_calls")):
            flush()
        if kind == "reasoning":
            answer["reasoning"] = "\n".join(s["text"] for s in item["summary"]) or None
        elif kind == "message" and item["role"] == "assistant":
            answer["content"] = "\n".join(
                p.get("text") or p.get("refusal") or "" for p in item["content"]
            )
        else:
            flush()
            messages.append(_native_turn(item, images))
    flush()
    return messages, images


def _native_turn(item: Item, images: list[str]) -> Item:
    if item["type"] == "function_call_output":
        return {"role": "tool", "content": item["output"], "tool_call_id": item["call_id"]}
    texts = [p["text"] for p in item["content"] if p["type"] == "input_text"]
    images += [p["image_url"] for p in item["content"] if p["type"] == "input_image"]
    role = "system" if item["role"] in ("system", "developer") else "user"
    return {"role": role, "content": "\n".join(texts)}
