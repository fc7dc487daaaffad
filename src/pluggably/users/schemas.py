"""Request and response bodies of the users domain (API.md §6)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from pluggably.usage.limits import Limits

if TYPE_CHECKING:  # the client imports these schemas without the database layer
    from pluggably.users.models import User

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")
# Control characters (C0, DEL, C1): not in an address or a name, which are printed where
# a terminal would obey an escape sequence in them (the CLI's tables) and in logs.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
NO_CONTROL = rf"^[^{_CONTROL}]*$"
_ADDRESS_CHAR = rf"[^@\s{_CONTROL}]"
EMAIL = re.compile(rf"^{_ADDRESS_CHAR}{{1,64}}@{_ADDRESS_CHAR}+\.{_ADDRESS_CHAR}+\Z")
RESERVED_USERNAMES = frozenset({"admin", "root", "system", "local", "pluggably"})

ScopeName = Literal["read", "write", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _normalise_username(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.casefold()
    if not USERNAME.match(value):
        raise ValueError("3-64 characters: letters, digits, '_', '.', '-'; starting alphanumeric")
    return value


def _normalise_email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.casefold()
    if len(value) > 320 or not EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


class RegisterRequest(_Strict):
    username: str | None = None
    email: str | None = None
    password: SecretStr = Field(max_length=1024)
    invite_token: SecretStr | None = None
    display_name: str | None = Field(default=None, max_length=200)

    _username = field_validator("username")(_normalise_username)
    _email = field_validator("email")(_normalise_email)

    @model_validator(mode="before")
    @classmethod
    def _address_as_username(cls, data: Any) -> Any:
        """The PlugAI Dart client sends its one identifier as ``username`` and, when it
        is an address, as ``email`` too: an address given as the username is the email
        (no username may contain '@')."""
        if not isinstance(data, dict):
            return data
        username, email = data.get("username"), data.get("email")
        same = email is None or (isinstance(email, str) and email.strip() == str(username).strip())
        if isinstance(username, str) and "@" in username and same:
            data = {k: v for k, v in data.items() if k != "username"}
            data["email"] = username
        return data

    @model_validator(mode="after")
    def _identity(self) -> RegisterRequest:
        if not self.username and not self.email:
            raise ValueError("give a username or an email")
        return self


class LoginRequest(_Strict):
    username: str | None = Field(default=None, max_length=320)
    email: str | None = Field(default=None, max_length=320)
    password: SecretStr = Field(max_length=1024)

    @model_validator(mode="after")
    def _identity(self) -> LoginRequest:
        if not self.username and not self.email:
            raise ValueError("give a username or an email")
        return self

    @property
    def identifier(self) -> str:
        return (self.username or self.email or "").casefold()


class UserProfile(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str | None
    email: str = Field(
        description="The account's email address; an empty string for an account without "
        "one (never null: the PlugAI clients read a string)."
    )
    display_name: str | None
    role: Literal["admin", "user"]
    preferred_model: str | None
    preferences: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @field_validator("email", mode="before")
    @classmethod
    def _no_address(cls, value: str | None) -> str:
        return value or ""


class OwnProfile(UserProfile):
    """The caller's profile (GET/PATCH /v1/users/me), with the limits that bound them."""

    limits: Limits | None = Field(
        description="The limits an administrator set on this account; null when none."
    )
    effective_limits: Limits = Field(
        description="What bounds this account: the strictest of the server default (not "
        "applied to administrators) and the account's own limits. An API token's own "
        "limits (its `limits`) narrow this further, and a new token may not exceed it."
    )


class LoginResponse(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_at: datetime
    user: UserProfile


class ProfileUpdate(_Strict):
    display_name: str | None = Field(default=None, max_length=200)
    preferred_model: str | None = Field(default=None, max_length=300)
    preferences: dict[str, Any] | None = None

    @field_validator("preferences")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(repr(value)) > 16_384:
            raise ValueError("preferences must stay under 16 KiB")
        return value


class ChangePasswordRequest(_Strict):
    current_password: SecretStr = Field(max_length=1024)
    new_password: SecretStr = Field(max_length=1024)


class TokenCreate(_Strict):
    name: str = Field(
        default="API token",
        min_length=1,
        max_length=100,
        pattern=NO_CONTROL,
        description="Defaults to 'API token' (the PlugAI clients may send no name). No "
        "control characters.",
    )
    scopes: list[ScopeName] = Field(default=["read", "write"], min_length=1)
    expires_days: int | None = Field(default=None, ge=1, le=3650)
    limits: Limits | None = Field(
        default=None,
        description="This token's own limits (API.md §9), checked besides its owner's; "
        "never wider than the owner's effective limits (400 invalid_parameter names the "
        "fields that would be).",
    )


class TokenInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    scopes: list[ScopeName]
    limits: Limits | None = Field(default=None, description="Set at creation; null when none.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenInfo):
    """The new token: its secret, its ``info``, and the same fields at the top level too
    (the PlugAI Dart client reads ``id`` and ``created_at`` there, the Python one ``info``)."""

    token: str = Field(description="The secret, shown only in this response.")
    info: TokenInfo

    @classmethod
    def of(cls, secret: str, info: TokenInfo) -> TokenCreated:
        return cls(token=secret, info=info, **info.model_dump())


class TokenRevoked(TokenInfo):
    """The answer of DELETE /v1/users/tokens/{id}: the token as it now stands."""

    revoked: Literal[True] = True
    revoked_at: datetime


class InviteCreate(_Strict):
    expires_days: int | None = Field(default=None, ge=1, le=365)
    email: str | None = None

    _email = field_validator("email")(_normalise_email)


class InviteInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    status: Literal["pending", "used", "expired", "revoked"]


class InviteCreated(BaseModel):
    token: str = Field(description="The invite secret, shown only in this response.")
    info: InviteInfo


class InviteList(BaseModel):
    invites: list[InviteInfo]


class StatusMessage(BaseModel):
    status: Literal["logged_out", "password_changed"]


Role = Literal["admin", "user"]


class UserQuery(BaseModel):
    """The filter and page of GET /v1/users (its query parameters)."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=500)
    q: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only accounts whose username, email or display name contains this "
        "(case-insensitive).",
    )


class UserSummary(BaseModel):
    """An account as administrators see it (GET/PATCH /v1/users/{id}, GET /v1/users)."""

    id: str
    username: str | None
    email: str = Field(description="An empty string for an account without one.")
    display_name: str | None
    role: Role
    disabled: bool = Field(
        description="A disabled account's login tokens and API tokens stop working on "
        "their next request; re-enabling it makes them work again."
    )
    created_at: datetime
    last_login_at: datetime | None = Field(description="The last password login.")

    @classmethod
    def of(cls, user: User) -> UserSummary:
        """From a ``users`` row (``is_active`` is stored; ``disabled`` is its inverse)."""
        return cls.model_validate(
            {
                "id": user.id,
                "username": user.username,
                "email": user.email or "",
                "display_name": user.display_name,
                "role": user.role,
                "disabled": not user.is_active,
                "created_at": user.created_at,
                "last_login_at": user.last_login_at,
            }
        )


class UserList(BaseModel):
    users: list[UserSummary] = Field(description="Oldest account first.")
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page."
    )


class UserUpdate(_Strict):
    """PATCH /v1/users/{id}: only the fields given change."""

    role: Role | None = None
    disabled: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)

    @field_validator("role", "disabled")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("leave the field out to keep it; null is not a value here")
        return value
