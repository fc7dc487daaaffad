"""Finding U+0000 in a JSON body that arrives in pieces.

PostgreSQL cannot store U+0000 in text, so a body that would decode to one is refused
before it reaches a route. In JSON text it is a raw 0x00 byte or the escape
``\\u0000``; ``\\\\u0000`` (an escaped backslash, then ``u0000``) is six ordinary
characters. Whether a ``u0000`` is an escape depends on the run of backslashes before
it, which may be long and may cross the pieces of the body: the scanner keeps the
parity of that run and the last bytes of the previous piece.
"""

from __future__ import annotations

_ESCAPE = b"u0000"
_BACKSLASH = 0x5C
# The bytes of a piece kept for the next one: an escape cut after its 4th byte.
_KEEP = len(_ESCAPE) - 1


class NulScanner:
    """Feed the pieces of one body in order; ``found`` is true once one holds NUL."""

    __slots__ = ("_odd_before_tail", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        # Whether an odd run of backslashes ends right before ``_tail``.
        self._odd_before_tail = False

    def found(self, piece: bytes) -> bool:
        if b"\x00" in piece:
            return True
        text = self._tail + piece
        at = text.find(_ESCAPE)
        while at != -1:
            if self._odd_run_before(text, at):
                return True
            at = text.find(_ESCAPE, at + 1)
        if len(text) > _KEEP:
            cut = len(text) - _KEEP
            self._odd_before_tail = self._odd_run_before(text, cut)
            self._tail = text[cut:]
        else:
            self._tail = text
        return False

    def _odd_run_before(self, text: bytes, end: int) -> bool:
        """Whether the backslashes right before ``text[end]`` are an odd run."""
        start = end
        while start > 0 and text[start - 1] == _BACKSLASH:
            start -= 1
        odd = (end - start) % 2 == 1
        return odd != self._odd_before_tail if start == 0 else odd
