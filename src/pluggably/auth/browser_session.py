"""The web console's session in a browser: the login token in an HttpOnly cookie, and
a CSRF token bound to it (signed double-submit).

The CSRF value is an HMAC of the session token under a key derived for this purpose
alone from the master keyring, prefixed with that key's id so a key rotation does not
sign everyone out. The console's script reads it from a readable cookie and echoes it
in ``X-CSRF-Token``; another site can make the browser send the cookies but can read
neither, so it cannot forge the header, and a value taken from one session is worth
nothing with another session's cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from pluggably.db.base import utcnow
from pluggably.keyring import Keyring, MasterKey

SESSION_COOKIE = "pluggably_session"
CSRF_COOKIE = "pluggably_csrf"
CSRF_HEADER = "X-CSRF-Token"
_PURPOSE = "console-csrf-v1"


@dataclass(frozen=True)
class Cookie:
    """One ``Set-Cookie``; ``max_age`` 0 deletes it."""

    name: str
    value: str
    max_age: int
    http_only: bool
    secure: bool
    path: str = "/"
    same_site: str = "strict"


class CsrfTokens:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def issue(self, session_token: str) -> str:
        key = self.keyring.active
        return f"{key.key_id}.{_mac(key, session_token)}"

    def matches(self, session_token: str, presented: str | None) -> bool:
        """True when ``presented`` is the CSRF value of ``session_token``."""
        if not presented:
            return False
        key_id, _, mac = presented.partition(".")
        key = self.keyring.get(key_id)
        if key is None:
            return False
        return hmac.compare_digest(mac.encode(), _mac(key, session_token).encode())


def _mac(key: MasterKey, session_token: str) -> str:
    digest = hmac.new(key.derive(_PURPOSE), session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_cookies(
    session_token: str, csrf: str, expires_at: datetime, *, secure: bool
) -> list[Cookie]:
    """The two cookies of a new session, living as long as its login token."""
    max_age = max(0, int((expires_at - utcnow()).total_seconds()))
    return [
        Cookie(SESSION_COOKIE, session_token, max_age, http_only=True, secure=secure),
        # Readable by the page's script: it is echoed in the CSRF header.
        Cookie(CSRF_COOKIE, csrf, max_age, http_only=False, secure=secure),
    ]


def cleared_cookies(*, secure: bool) -> list[Cookie]:
    return [
        Cookie(SESSION_COOKIE, "", 0, http_only=True, secure=secure),
        Cookie(CSRF_COOKIE, "", 0, http_only=False, secure=secure),
    ]
