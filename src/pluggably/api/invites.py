"""Invites (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pluggably.api.deps import AdminUser, DbSession, Invites
from pluggably.api.schemas import AUTH_ERRORS, error_responses
from pluggably.users.invites import invite_status
from pluggably.users.models import Invite
from pluggably.users.schemas import InviteCreate, InviteCreated, InviteInfo, InviteList

router = APIRouter(prefix="/v1/users/invites", tags=["invites"], responses=AUTH_ERRORS)


def _info(invite: Invite) -> InviteInfo:
    return InviteInfo.model_validate(
        {
            **{c: getattr(invite, c) for c in InviteInfo.model_fields if c != "status"},
            "status": invite_status(invite),
        }
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=InviteCreated)
async def create_invite(
    body: InviteCreate, principal: AdminUser, session: DbSession, invites: Invites
) -> InviteCreated:
    """Create a single-use invite; its secret is in this response only."""
    secret, invite = await invites.create(session, principal.user_id, body.email, body.expires_days)
    return InviteCreated(token=secret, info=_info(invite))


@router.get("", response_model=InviteList)
async def list_invites(_admin: AdminUser, session: DbSession, invites: Invites) -> InviteList:
    return InviteList(invites=[_info(i) for i in await invites.list(session)])


@router.delete(
    "/{invite_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def revoke_invite(
    invite_id: str, _admin: AdminUser, session: DbSession, invites: Invites
) -> Response:
    await invites.revoke(session, invite_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
