"""Paging of sessions and of their messages.

Session lists page by keyset on (last_used_at desc, id desc) behind an opaque cursor;
a session's messages page newest first within a byte budget, so that one page of long
messages stays bounded."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime

from pluggably.errors import ValidationFailed
from pluggably.sessions.models import ChatSession

PAGE_MESSAGES = 100  # a read without ``limit``
PAGE_BYTES = 8 * 1024 * 1024


def encode_cursor(last: ChatSession) -> str:
    raw = json.dumps({"t": last.last_used_at.isoformat(), "id": last.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or set(data) != {"t", "id"}:
            raise TypeError
        moment, last_id = datetime.fromisoformat(data["t"]), data["id"]
        if moment.tzinfo is None or not isinstance(last_id, str):
            raise TypeError
        return moment, last_id
    except (ValueError, TypeError, binascii.Error):
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from the previous page.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}],
        ) from None


def page_length(sizes: Sequence[tuple[int, int]], budget: int) -> int:
    """How many of ``sizes`` (newest first) a page holds: as many as fit ``budget``
    bytes, and at least one, so that paging always moves on."""
    total = 0
    for taken, (_, size) in enumerate(sizes):
        total += size
        if taken and total > budget:
            return taken
    return len(sizes)
