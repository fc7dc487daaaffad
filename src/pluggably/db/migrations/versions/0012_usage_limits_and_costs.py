"""usage limits and costs

Request records gain the API token used, cost_usd and latency_ms (with indexes for
usage reports and budget seeds); users and API tokens gain their limits; users their
last login; limit_counters and limit_slots hold the counts replicas share on PostgreSQL.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 19:28:00.608513
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pluggably.db.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_counters",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "kind", "window_start", name=op.f("pk_limit_counters")),
    )
    op.create_table(
        "limit_slots",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("taken_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "scope", name=op.f("pk_limit_slots")),
    )
    with op.batch_alter_table("limit_slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_limit_slots_scope"), ["scope"], unique=False)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))

    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
        batch_op.create_index("ix_requests_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_requests_token_id_created_at", ["token_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_requests_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("last_login_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("last_login_at")
        batch_op.drop_column("limits")

    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_user_id_created_at")
        batch_op.drop_index("ix_requests_token_id_created_at")
        batch_op.drop_index("ix_requests_created_at")
        batch_op.drop_column("latency_ms")
        batch_op.drop_column("cost_usd")
        batch_op.drop_column("token_id")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("limits")

    with op.batch_alter_table("limit_slots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_limit_slots_scope"))

    op.drop_table("limit_slots")
    op.drop_table("limit_counters")
