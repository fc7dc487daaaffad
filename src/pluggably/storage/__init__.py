"""Disk quota and retention for models, and (later) the artifact stores."""
