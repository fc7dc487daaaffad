"""The OpenAI-compatible surface under /openai/v1."""
