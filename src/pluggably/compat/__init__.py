"""Wire shapes and translation for the compatibility surfaces (API.md §8)."""
