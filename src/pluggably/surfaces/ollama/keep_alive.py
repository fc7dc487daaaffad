"""Ollama's ``keep_alive``: how long the model stays loaded after this request. A
number is seconds; a string a Go duration ("5m", "1h30m", "500ms", "0", "-1"). As in
Ollama, every request sets it: one that names none puts the server's own back."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pluggably.errors import InvalidParameter
from pluggably.lifecycle.residency import ResidencyService

_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


@dataclass(frozen=True)
class KeepAlive:
    """Seconds idle before the model unloads (0: right after this answer); None: it
    stays loaded until evicted (a negative keep_alive)."""

    seconds: float | None


def keep_alive(value: float | str | None) -> KeepAlive | None:
    """The request's keep-alive, or None when it sets none (the server's own holds)."""
    if value is None or value == "":
        return None
    seconds = value if isinstance(value, int | float) else _duration(value.strip())
    return KeepAlive(None if seconds < 0 else float(seconds))


def _duration(text: str) -> float:
    try:
        seconds = float(text)  # "300", "-1": seconds, as Ollama reads a bare number
    except ValueError:
        pass
    else:
        if not math.isnan(seconds):
            return seconds
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    total, at = 0.0, 0
    for match in _PART.finditer(body):
        if match.start() != at:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        at = match.end()
    if not body or at != len(body):
        raise InvalidParameter(
            f"keep_alive {text!r} is not a duration: send seconds (300, 0, -1) or a "
            "duration such as '5m', '1h' or '30s'."
        )
    return sign * total


def apply(
    residency: ResidencyService, model_id: str, keep: KeepAlive | None, *, is_admin: bool
) -> None:
    """The request's keep-alive for a loaded local model; none: the server's again (a
    pinned model's stays as it is unless an admin asked)."""
    seconds = None if keep is None else keep.seconds
    residency.keep_alive(model_id, seconds, may_unpin=is_admin, own=keep is not None)
