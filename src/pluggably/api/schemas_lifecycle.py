"""Moved to ``lifecycle/schemas.py``; kept only for api/lifecycle.py until its owner
imports from there."""

from pluggably.lifecycle.schemas import LoadedList as LoadedList
from pluggably.lifecycle.schemas import LoadedModel as LoadedModel
from pluggably.lifecycle.schemas import LoadRequest as LoadRequest
from pluggably.lifecycle.schemas import Residency as Residency
from pluggably.lifecycle.schemas import UnloadRequest as UnloadRequest
