"""stored responses

The Responses API's stored responses (responses/models.py): one row per response,
owned by its user (deleted with them), chained by previous_response_id.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 16:10:02.970042
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pluggably.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("previous_response_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stored_responses_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.create_index("ix_stored_responses_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_stored_responses_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_responses_created_at")
        batch_op.drop_index("ix_stored_responses_user_id")

    op.drop_table("stored_responses")
