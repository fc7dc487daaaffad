"""Developer helper: autogenerate the next migration from the tables.

Usage: ``python -m pluggably.db.revision "message"``. Compares the tables with a
scratch SQLite database upgraded to head and writes ``versions/NNNN_<slug>.py``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from pluggably.db import migrate
from pluggably.db.engine import make_engine


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}"
        engine = make_engine(url)
        asyncio.run(migrate.upgrade(engine))
        cfg = migrate.alembic_config(url)
        head = ScriptDirectory.from_config(cfg).get_current_head()
        rev_id = f"{int(head or '0') + 1:04d}"
        cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit('usage: python -m pluggably.db.revision "message"')
    main(sys.argv[1])
