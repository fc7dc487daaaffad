"""cluster: replicas, the replica running each request, download job leases

``replicas`` holds one row per running replica (its heartbeat); requests name the
replica that runs them; download jobs carry their runner's lease and a cancel asked
from any replica; ``setup_tokens`` holds the first-run setup links of every replica.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pluggably.db.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "setup_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_setup_tokens")),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("local_models", sa.Boolean(), nullable=False),
        sa.Column("started_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", pluggably.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_requests_replica_id_status", ["replica_id", "status"])
    with op.batch_alter_table("download_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("lease_until", pluggably.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("download_jobs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("runner_id")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_replica_id_status")
        batch_op.drop_column("replica_id")
    op.drop_table("replicas")
    op.drop_table("setup_tokens")
