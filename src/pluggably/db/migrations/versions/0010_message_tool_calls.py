"""message tool calls and reasoning

Sessions store the tool calls an assistant turn made, the call a tool turn answers,
and an assistant turn's visible reasoning with its vendor's signature, so that the
next turn replays them. All four are NULL on the rows already stored (none of them
called a tool or reasoned visibly), so their stored sizes stand as they are.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tool_calls", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tool_call_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("reasoning", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reasoning_signature", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reasoning_signature")
        batch_op.drop_column("reasoning")
        batch_op.drop_column("tool_call_id")
        batch_op.drop_column("tool_calls")
