"""The ``pluggably`` command line: server commands (serve, db, users, secrets) in
``main``, and remote commands that drive a server through ``pluggably.client``."""

from pluggably.cli.main import app, main

__all__ = ["app", "main"]
