"""Provider credentials: the keys users and the server hold for remote providers, sealed
at rest under the master keyring (``pluggably/keyring.py``)."""
