"""Login tokens: HS256 JWTs signed with a key derived from the master keyring,
carrying ``sub``, ``iat``, ``exp``, ``jti`` and the user's login generation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from pluggably.db.base import utcnow
from pluggably.errors import Unauthorized
from pluggably.keyring import Keyring

ISSUER = "pluggably"
_PURPOSE = "login-jwt-v1"


@dataclass(frozen=True)
class IssuedLogin:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginClaims:
    user_id: str
    jti: str
    generation: int
    expires_at: datetime


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("eyJ")


def unverified_issuer(credential: str) -> str | None:
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


class LoginTokens:
    def __init__(self, keyring: Keyring, ttl: timedelta) -> None:
        self.keyring = keyring
        self.ttl = ttl

    def issue(self, user_id: str, generation: int) -> IssuedLogin:
        now = utcnow()
        expires = now + self.ttl
        jti = secrets.token_hex(16)
        key = self.keyring.active
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
            "gen": generation,
        }
        token = jwt.encode(
            claims, key.derive(_PURPOSE), algorithm="HS256", headers={"kid": key.key_id}
        )
        return IssuedLogin(token=token, jti=jti, expires_at=expires.replace(microsecond=0))

    def decode(self, token: str) -> LoginClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keyring.get_or_reload(kid) if isinstance(kid, str) else None
            if key is None:
                raise Unauthorized("This login token was signed with an unknown key; log in again.")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.derive(_PURPOSE),
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "jti", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("This login token has expired; log in again.") from None
        except jwt.PyJWTError:
            raise Unauthorized("This login token is not valid.") from None
        return LoginClaims(
            user_id=str(claims["sub"]),
            jti=str(claims["jti"]),
            generation=int(claims.get("gen", 0)),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo),
        )
