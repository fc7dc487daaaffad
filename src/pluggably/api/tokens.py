"""The caller's API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pluggably.api.deps import DbSession, Reader, Tokens, Writer
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.users.schemas import TokenCreate, TokenCreated, TokenInfo, TokenList

router = APIRouter(prefix="/v1/users/tokens", tags=["tokens"], responses=AUTH_ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
async def create_token(
    body: TokenCreate, principal: Writer, session: DbSession, tokens: Tokens
) -> TokenCreated:
    """Create a token. Its secret is in this response only; it is stored as a keyed hash."""
    secret, token = await tokens.create(session, principal, body)
    return TokenCreated(token=secret, info=TokenInfo.model_validate(token))


@router.get("", response_model=TokenList)
async def list_tokens(principal: Reader, session: DbSession, tokens: Tokens) -> TokenList:
    return TokenList(
        tokens=[TokenInfo.model_validate(t) for t in await tokens.list(session, principal)]
    )


@router.delete(
    "/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def revoke_token(
    token_id: str, principal: Writer, session: DbSession, tokens: Tokens
) -> Response:
    """Revoke a token; it stops working on its next request."""
    await tokens.revoke(session, principal, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
