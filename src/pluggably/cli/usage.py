"""``pluggably usage``: the caller's usage report from a running server."""

from __future__ import annotations

import typer

usage_app = typer.Typer(help="Usage reports from a running server.", no_args_is_help=True)
