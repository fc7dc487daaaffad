"""Identifiers: opaque strings with a readable type prefix (``usr_…``, ``req_…``)."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
