"""The Anthropic-compatible surface under /anthropic/v1."""
