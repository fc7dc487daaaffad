"""Bearer JWTs from an external identity provider: signature (HS256 secret, or
RS256/ES256 public keys from a PEM or JWKS file), ``iss``, ``aud``, ``exp`` and a
``sub`` are all required."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt

from pluggably.auth.login_tokens import looks_like_jwt, unverified_issuer
from pluggably.config import ExternalJwtSettings
from pluggably.errors import ConfigError, Unauthorized


@dataclass(frozen=True)
class ExternalClaims:
    subject: str  # "<iss>|<sub>": unique across issuers
    name: str | None


class ExternalJwtDecoder:
    def __init__(self, settings: ExternalJwtSettings) -> None:
        self.settings = settings
        self._static_key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        try:
            if settings.secret is not None:
                self._static_key = settings.secret.get_secret_value()
            elif settings.public_key_file is not None:
                self._static_key = settings.public_key_file.read_text()
            elif settings.jwks_file is not None:
                self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text()))
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            raise ConfigError(f"PLUGGABLY_EXTERNAL_JWT: cannot load the key: {exc}") from None

    def owns(self, credential: str) -> bool:
        return looks_like_jwt(credential) and unverified_issuer(credential) == self.settings.issuer

    def decode(self, token: str) -> ExternalClaims:
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The identity provider's token has expired.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(
                f"The identity provider's token has no '{exc.claim}' claim."
            ) from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The identity provider's token is for another audience.") from None
        except jwt.PyJWTError:  # includes InvalidKeyError: an algorithm that misfits the key
            raise Unauthorized("The identity provider's token is not valid.") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("The identity provider's token has an empty 'sub' claim.")
        name = claims.get("name")
        return ExternalClaims(
            subject=f"{s.issuer}|{sub}", name=name if isinstance(name, str) else None
        )

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._static_key
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("The identity provider's token is not valid.") from None
        for key in self._jwks.keys:
            if key.key_id == kid:
                return key.key
        raise Unauthorized("The identity provider's token names an unknown signing key.")
