"""Request and response bodies of the sessions domain (API.md §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pluggably.artifacts.schemas import ArtifactInfo
from pluggably.tool_call_schema import ToolCallSpec

SessionStatus = Literal["active", "closed"]
Role = Literal["user", "assistant", "system", "tool"]

TITLE_MAX = 200  # the column's width
SYSTEM_PROMPT_MAX = 65_536


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _clean_title(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("a title cannot be blank; send null to remove it")
    return value


class SessionCreate(_Strict):
    title: str | None = Field(
        default=None,
        max_length=TITLE_MAX,
        description="Unset: the session takes its title from the first prompt.",
    )
    system_prompt: str | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX)

    _title = field_validator("title")(_clean_title)


class SessionUpdate(_Strict):
    """Only the fields sent change. A title set here is never replaced by the automatic
    one; ``title: null`` removes it and lets the next prompt title the session."""

    title: str | None = Field(default=None, max_length=TITLE_MAX)
    system_prompt: str | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX)

    _title = field_validator("title")(_clean_title)


class SessionSummary(BaseModel):
    """One entry of ``GET /v1/sessions``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str | None
    status: SessionStatus
    created_at: datetime
    last_used_at: datetime
    message_count: int


class SessionQuery(BaseModel):
    """The filters and page of GET /v1/sessions (its query parameters)."""

    model_config = ConfigDict(frozen=True)

    status: SessionStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=500)


class SessionList(BaseModel):
    sessions: list[SessionSummary]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page."
    )


class SessionInfo(SessionSummary):
    """A session without its messages (answers of create, update and reset)."""

    system_prompt: str | None
    state_tokens: dict[str, Any] | None


class MessageInfo(BaseModel):
    id: str
    role: Role
    content: str
    modality: str
    model: str | None
    provider: str | None
    artifacts: list[ArtifactInfo] = Field(
        description="What this turn produced, with fresh signed links; expired ones are left out."
    )
    tool_calls: list[ToolCallSpec] | None = Field(
        default=None, description="The tools an assistant turn called; null when none."
    )
    tool_call_id: str | None = Field(
        default=None, description="The call a tool turn answers; null for other roles."
    )
    reasoning: str | None = Field(
        default=None, description="An assistant turn's visible reasoning, when it gave one."
    )
    reasoning_signature: str | None = Field(
        default=None,
        description="Its vendor's signature of that reasoning, to send back with it.",
    )
    created_at: datetime


class SessionDetail(SessionInfo):
    """A session with its messages, oldest first."""

    messages: list[MessageInfo]
    next_before: str | None = Field(
        default=None,
        description="When older messages were left out (``limit``): pass as ``before`` to "
        "read them; null when the oldest message is included.",
    )
