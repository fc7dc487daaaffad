"""Database: async engine, session handling, the declarative base and migrations."""

from pluggably.db import migrate
from pluggably.db.base import Base, UTCDateTime, utcnow
from pluggably.db.engine import DATABASE_DOWN, Database

__all__ = ["DATABASE_DOWN", "Base", "Database", "UTCDateTime", "migrate", "utcnow"]
