"""Moved to ``generation/schemas.py``; kept only for api/generate.py and cli/requests.py
until their owners import from there."""

from pluggably.generation.schemas import CancelResult as CancelResult
from pluggably.generation.schemas import RequestDetails as RequestDetails
from pluggably.generation.schemas import RequestStatus as RequestStatus
