"""Database: async engine, session handling, the declarative base and migrations."""

from pluggably.db import migrate
from pluggably.db.base import Base, UTCDateTime, utcnow
from pluggably.db.engine import Database

__all__ = ["Base", "Database", "UTCDateTime", "migrate", "utcnow"]
