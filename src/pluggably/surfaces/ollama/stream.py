"""NDJSON streams (``application/x-ndjson``): one JSON object per line, as Ollama
writes them and its clients read them (each line goes to ``json.loads``: no blank or
comment lines, so no keep-alives). The SSE layer's machinery (batched writes, the
client's disconnect stopping the source at once) with these lines instead of frames;
its own failures (a cancel, a bug below) are ``{"error": …}`` lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from pluggably.api.sse import SSEFormat, sse_response

MEDIA_TYPE = "application/x-ndjson"
# A line of its own is the only keep-alive NDJSON has, and a client would read it as
# an answer: none is sent (Ollama sends none either).
_NO_KEEPALIVE_S = 10.0 * 365 * 24 * 3600

NDJSON = SSEFormat(
    encode=lambda item: orjson.dumps(item) + b"\n",
    error=lambda _code, message: {"error": message},
    done=b"",
)


def ndjson_response(
    lines: AsyncIterator[dict[str, Any]], source: object = None
) -> StreamingResponse:
    response = sse_response(lines, keepalive_s=_NO_KEEPALIVE_S, fmt=NDJSON, source=source)
    response.headers["content-type"] = MEDIA_TYPE
    return response
