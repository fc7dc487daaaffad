"""Moved to ``pluggably/keyring.py``; kept only for app.py, container.py, cli/main.py and
artifacts/ until their owners import from there."""

from pluggably.keyring import Keyring as Keyring
from pluggably.keyring import MasterKey as MasterKey
from pluggably.keyring import add_key as add_key
from pluggably.keyring import load_keyring as load_keyring
