"""Choosing what serves a request: model ids, providers, auto selection, fallbacks."""
