"""session storage sizes

Each message records its size and each session the total of its messages and the
size of its own fields (system prompt, state tokens), so that what a user stores in
sessions is one SUM over their sessions (sessions/storage.py), read from an index on
(user_id, message_bytes, own_bytes) alone. Rows already stored are measured here. An
index on (session_id, seq, size_bytes) lets a page of messages be planned without
reading their text.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As sessions/storage.py counts them.
MESSAGE_CHARGE = 128
SESSION_CHARGE = 512


_messages = sa.table(
    "messages",
    sa.column("session_id", sa.String),
    sa.column("content", sa.Text),
    sa.column("size_bytes", sa.Integer),
)
_sessions = sa.table(
    "sessions",
    sa.column("id", sa.String),
    sa.column("system_prompt", sa.Text),
    sa.column("state_tokens", sa.Text),
    sa.column("message_bytes", sa.BigInteger),
    sa.column("own_bytes", sa.BigInteger),
)


def _octets(column: sa.ColumnClause[object], dialect: str) -> sa.ColumnElement[int]:
    """UTF-8 bytes of a text (or JSON) column; 0 for NULL."""
    if dialect == "postgresql":
        length = sa.func.octet_length(sa.cast(column, sa.Text))
    else:
        length = sa.func.length(sa.cast(column, sa.LargeBinary))  # CAST AS BLOB
    return sa.func.coalesce(length, 0)


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("size_bytes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_messages_session_seq_size", ["session_id", "seq", "size_bytes"], unique=False
        )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("message_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("own_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_sessions_user_bytes", ["user_id", "message_bytes", "own_bytes"], unique=False
        )

    dialect = op.get_bind().dialect.name
    content = _octets(_messages.c.content, dialect)
    op.execute(sa.update(_messages).values(size_bytes=content + MESSAGE_CHARGE))
    total = (
        sa.select(sa.func.coalesce(sa.func.sum(_messages.c.size_bytes), 0))
        .where(_messages.c.session_id == _sessions.c.id)
        .scalar_subquery()
    )
    own = (
        SESSION_CHARGE
        + _octets(_sessions.c.system_prompt, dialect)
        + _octets(_sessions.c.state_tokens, dialect)
    )
    op.execute(sa.update(_sessions).values(message_bytes=total, own_bytes=own))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_user_bytes")
        batch_op.drop_column("own_bytes")
        batch_op.drop_column("message_bytes")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_session_seq_size")
        batch_op.drop_column("size_bytes")
