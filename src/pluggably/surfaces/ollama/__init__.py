"""Ollama-compatible surface at /api/* (API.md §8)."""
