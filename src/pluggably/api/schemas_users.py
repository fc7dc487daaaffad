"""Answers of the account routes (``api/users.py``) that are not the domain's own
(those are in ``users/schemas.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class StatusMessage(BaseModel):
    status: Literal["logged_out", "password_changed"]
