"""The orchestration of one generation request: resolve, call, normalise, record."""
