"""Ollama's ``options`` as native parameters. Ollama ignores the options a model does
not use; so does this surface: only the mapped ones reach the native request (whose
parameter schema would refuse the others), and a mapped one out of its range is the
native 400 naming it."""

from __future__ import annotations

from typing import Any

# Ollama's name -> the native parameter of the same meaning.
_SAME = ("temperature", "top_p", "seed", "stop")


def parameters(options: dict[str, Any] | None) -> dict[str, Any]:
    """``num_predict`` is ``max_tokens`` (-1 and -2, "no limit" and "fill the context",
    set none). ``num_ctx``, ``top_k``, the penalties, mirostat and the runner's own
    options (threads, GPU layers, …) have no native parameter: ignored, as Ollama
    ignores an option a model does not use."""
    if not options:
        return {}
    out = {name: options[name] for name in _SAME if options.get(name) is not None}
    if isinstance(out.get("stop"), list) and not out["stop"]:
        del out["stop"]
    limit = options.get("num_predict")
    if limit is not None and not (isinstance(limit, int) and limit < 0):
        out["max_tokens"] = limit
    return out
