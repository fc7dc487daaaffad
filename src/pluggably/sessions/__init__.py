"""Sessions: a user's multi-turn conversations and their messages."""
