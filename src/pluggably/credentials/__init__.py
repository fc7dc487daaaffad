"""Secrets: the master key, and (later) encrypted provider credentials."""
