"""stored default parameter schemas take up to 64 stop sequences

Models registered before this release keep the default text schema they were given,
which allowed 4 stop sequences (OpenAI's own limit); the gateway now applies stop
sequences itself where an upstream takes fewer, so that stored default is brought up
to today's. A schema whose ``stop`` was changed by hand is left as it is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00.000000
"""

import copy
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STOP: dict[str, Any] = {
    "description": "Up to 4 sequences that end generation.",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 4},
    ],
    "examples": [["\n\n"]],
}
NEW_STOP: dict[str, Any] = {
    "description": "Up to 64 sequences (each at most 1000 characters) that end generation; "
    "the answer stops before the first one it would contain.",
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 1000},
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 1000},
            "maxItems": 64,
        },
    ],
    "examples": [["\n\n"]],
}

_schemas = sa.table("model_schemas", sa.column("id", sa.Integer), sa.column("schema", sa.JSON))


def _replace(old: dict[str, Any], new: dict[str, Any]) -> None:
    connection = op.get_bind()
    for row in connection.execute(sa.select(_schemas.c.id, _schemas.c.schema)).all():
        schema = row.schema
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(properties, dict) or properties.get("stop") != old:
            continue
        updated = copy.deepcopy(schema)
        updated["properties"]["stop"] = copy.deepcopy(new)
        connection.execute(
            sa.update(_schemas).where(_schemas.c.id == row.id).values(schema=updated)
        )


def upgrade() -> None:
    _replace(OLD_STOP, NEW_STOP)


def downgrade() -> None:
    _replace(NEW_STOP, OLD_STOP)
