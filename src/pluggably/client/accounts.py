"""Accounts (API.md §6): users, API tokens, provider keys, invites."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from pluggably.client.binding import Bound, S, operation
from pluggably.client.calls import (
    UNSET,
    Call,
    Route,
    dump,
    fields,
    model,
    nothing,
    query_params,
)
from pluggably.credentials.schemas import (
    CredentialType,
    ProviderKeyCreate,
    ProviderKeyDeleted,
    ProviderKeyInfo,
)
from pluggably.usage.limits import Limits
from pluggably.users.schemas import (
    ChangePasswordRequest,
    InviteCreate,
    InviteCreated,
    InviteList,
    LoginRequest,
    LoginResponse,
    OwnProfile,
    ProfileUpdate,
    RegisterRequest,
    Role,
    ScopeName,
    StatusMessage,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    TokenRevoked,
    UserList,
    UserProfile,
    UserSummary,
    UserUpdate,
)

LimitsLike = Limits | Mapping[str, Any]

M = TypeVar("M", bound=BaseModel)


def bare_list(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    """Read an answer that is a bare JSON list of ``cls``."""
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[M]:
        items: list[M] = adapter.validate_python(response.json())
        return items

    return parse


class Users(Bound[S]):
    """Registration, login and the caller's profile: ``client.users``."""

    @operation("POST", "/v1/users/register")
    def register(
        route: Route,
        *,
        password: str,
        username: str | None = None,
        email: str | None = None,
        invite_token: str | None = None,
        display_name: str | None = None,
    ) -> Call[UserProfile]:
        """Create an account (a single-use invite is needed unless registration is open)."""
        body = RegisterRequest.model_validate(
            fields(
                username=username or UNSET,
                email=email or UNSET,
                password=password,
                invite_token=invite_token or UNSET,
                display_name=display_name or UNSET,
            )
        )
        return Call(route, route.url(), model(UserProfile), body=dump(body))

    @operation("POST", "/v1/users/login")
    def login(
        route: Route, *, password: str, username: str | None = None, email: str | None = None
    ) -> Call[LoginResponse]:
        """A login token for a password: use it as ``Client(token=...)``."""
        body = LoginRequest.model_validate(
            fields(username=username or UNSET, email=email or UNSET, password=password)
        )
        return Call(route, route.url(), model(LoginResponse), body=dump(body))

    @operation("POST", "/v1/users/logout")
    def logout(route: Route) -> Call[StatusMessage]:
        """Revoke the login token this client presents."""
        return Call(route, route.url(), model(StatusMessage))

    @operation("GET", "/v1/users/me")
    def me(route: Route) -> Call[OwnProfile]:
        """The caller's profile, with the limits set on the account and those in effect."""
        return Call(route, route.url(), model(OwnProfile))

    @operation("PATCH", "/v1/users/me")
    def update_me(
        route: Route,
        *,
        display_name: str | None = UNSET,
        preferred_model: str | None = UNSET,
        preferences: Mapping[str, Any] | None = UNSET,
    ) -> Call[OwnProfile]:
        """Change only the fields given; answers the stored profile."""
        body = ProfileUpdate.model_validate(
            fields(
                display_name=display_name,
                preferred_model=preferred_model,
                preferences=dict(preferences) if preferences else preferences,
            )
        )
        return Call(route, route.url(), model(OwnProfile), body=dump(body))

    @operation("POST", "/v1/users/change-password")
    def change_password(
        route: Route, *, current_password: str, new_password: str
    ) -> Call[StatusMessage]:
        """Every other login token of the user stops working."""
        body = ChangePasswordRequest.model_validate(
            {"current_password": current_password, "new_password": new_password}
        )
        return Call(route, route.url(), model(StatusMessage), body=dump(body))

    # administrators

    @operation("GET", "/v1/users")
    def list_users(
        route: Route, *, limit: int | None = None, cursor: str | None = None, q: str | None = None
    ) -> Call[UserList]:
        """One page of accounts, oldest first (admin); ``q`` filters by a part of the
        username, email or display name; pass ``next_cursor`` as ``cursor`` for more."""
        params = query_params(limit=limit, cursor=cursor, q=q)
        return Call(route, route.url(), model(UserList), params=params)

    @operation("GET", "/v1/users/{user_id}")
    def get(route: Route, user_id: str) -> Call[UserSummary]:
        """One account (admin)."""
        return Call(route, route.url(user_id=user_id), model(UserSummary))

    @operation("PATCH", "/v1/users/{user_id}")
    def update(
        route: Route,
        user_id: str,
        *,
        role: Role = UNSET,
        disabled: bool = UNSET,
        display_name: str | None = UNSET,
    ) -> Call[UserSummary]:
        """Change an account's role, disable or re-enable it, or rename it (admin);
        applies to its next request."""
        body = UserUpdate.model_validate(
            fields(role=role, disabled=disabled, display_name=display_name)
        )
        return Call(route, route.url(user_id=user_id), model(UserSummary), body=dump(body))

    @operation("GET", "/v1/users/{user_id}/limits")
    def limits(route: Route, user_id: str) -> Call[Limits]:
        """The limits set on an account (admin); null fields set nothing."""
        return Call(route, route.url(user_id=user_id), model(Limits))

    @operation("PUT", "/v1/users/{user_id}/limits")
    def set_limits(route: Route, user_id: str, limits: LimitsLike) -> Call[Limits]:
        """Replace an account's limits (admin): fields left out are cleared."""
        body = dump(Limits.model_validate(limits))
        return Call(route, route.url(user_id=user_id), model(Limits), body=body)

    update_limits = set_limits.sent_as(
        "PATCH", "Change only the limits given (admin): a None clears one, others stay."
    )


class Tokens(Bound[S]):
    """The caller's API tokens: ``client.tokens``."""

    @operation("POST", "/v1/users/tokens")
    def create(
        route: Route,
        name: str,
        *,
        scopes: Sequence[ScopeName] | None = None,
        expires_days: int | None = None,
        limits: LimitsLike | None = None,
    ) -> Call[TokenCreated]:
        """A new token (default scopes ``read``, ``write``); its secret (``.token``) is
        in this answer only. ``limits`` may only narrow the caller's own."""
        body = TokenCreate.model_validate(
            fields(
                name=name,
                scopes=UNSET if scopes is None else list(scopes),
                expires_days=expires_days if expires_days is not None else UNSET,
                limits=UNSET if limits is None else Limits.model_validate(limits),
            )
        )
        return Call(route, route.url(), model(TokenCreated), body=dump(body))

    @operation("DELETE", "/v1/users/tokens/{token_id}")
    def revoke(route: Route, token_id: str) -> Call[TokenRevoked]:
        """Revoke a token; it stops working on its next request. Answers the revoked token."""
        return Call(route, route.url(token_id=token_id), model(TokenRevoked))

    @operation("GET", "/v1/users/tokens")
    def list(route: Route) -> Call[builtins.list[TokenInfo]]:
        """The caller's tokens (no secrets)."""
        return Call(route, route.url(), bare_list(TokenInfo))


class ProviderKeys(Bound[S]):
    """The caller's own provider credentials (stored sealed, answered masked):
    ``client.provider_keys``."""

    @operation("POST", "/v1/users/provider-keys")
    def put(
        route: Route,
        provider: str,
        *,
        api_key: str | None = None,
        credential_type: CredentialType | None = None,
        endpoint: str | None = None,
        oauth_token: str | None = None,
        service_account_json: str | None = None,
        label: str | None = None,
    ) -> Call[ProviderKeyInfo]:
        """Store a credential for ``provider``, replacing any previous one."""
        given = {
            "credential_type": credential_type,
            "api_key": api_key,
            "endpoint": endpoint,
            "oauth_token": oauth_token,
            "service_account_json": service_account_json,
            "label": label,
        }
        body = ProviderKeyCreate.model_validate(
            {"provider": provider, **{k: v for k, v in given.items() if v is not None}}
        )
        return Call(route, route.url(), model(ProviderKeyInfo), body=dump(body))

    @operation("DELETE", "/v1/users/provider-keys/{provider}")
    def delete(route: Route, provider: str) -> Call[ProviderKeyDeleted]:
        """Remove the credential for ``provider``; answers it, masked."""
        return Call(route, route.url(provider=provider), model(ProviderKeyDeleted))

    @operation("GET", "/v1/users/provider-keys")
    def list(route: Route) -> Call[builtins.list[ProviderKeyInfo]]:
        """The caller's provider credentials, masked."""
        return Call(route, route.url(), bare_list(ProviderKeyInfo))


class Invites(Bound[S]):
    """Invites (admin only): ``client.invites``."""

    @operation("POST", "/v1/users/invites")
    def create(
        route: Route, *, expires_days: int | None = None, email: str | None = None
    ) -> Call[InviteCreated]:
        """A single-use invite; its secret (``.token``) is in this answer only."""
        body = InviteCreate.model_validate(
            fields(expires_days=expires_days or UNSET, email=email or UNSET)
        )
        return Call(route, route.url(), model(InviteCreated), body=dump(body))

    @operation("DELETE", "/v1/users/invites/{invite_id}")
    def revoke(route: Route, invite_id: str) -> Call[None]:
        return Call(route, route.url(invite_id=invite_id), nothing)

    @operation("GET", "/v1/users/invites")
    def list(route: Route) -> Call[InviteList]:
        return Call(route, route.url(), model(InviteList))
