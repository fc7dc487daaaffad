"""The caller's API tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from pluggably.api.deps import DbSession, Reader, ServerLimits, Tokens, Writer
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.users.schemas import TokenCreate, TokenCreated, TokenInfo, TokenRevoked

router = APIRouter(prefix="/v1/users/tokens", tags=["tokens"], responses=AUTH_ERRORS)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=error_responses(400),
)
async def create_token(
    body: TokenCreate, principal: Writer, session: DbSession, tokens: Tokens, default: ServerLimits
) -> TokenCreated:
    """Create a token. Its secret is in this response only; it is stored as a keyed hash.
    The token's fields are given both in ``info`` and at the top level. Its ``limits``
    may only narrow the caller's (400 ``invalid_parameter`` names the fields that would
    not); a token made with a limited token keeps that token's limits as well."""
    secret, token = await tokens.create(session, principal, body, default)
    return TokenCreated.of(secret, TokenInfo.model_validate(token))


@router.get("", response_model=list[TokenInfo])
async def list_tokens(principal: Reader, session: DbSession, tokens: Tokens) -> list[TokenInfo]:
    """The caller's live tokens (no secrets), as a bare JSON list."""
    return [TokenInfo.model_validate(t) for t in await tokens.list(session, principal)]


@router.delete("/{token_id}", response_model=TokenRevoked, responses=error_responses(404))
async def revoke_token(
    token_id: str, principal: Writer, session: DbSession, tokens: Tokens
) -> TokenRevoked:
    """Revoke a token; it stops working on its next request. Answers the revoked token
    (``revoked: true``)."""
    token = await tokens.revoke(session, principal, token_id)
    return TokenRevoked.model_validate(token)
