"""Moved to ``generation/schemas.py``; kept only for api/generate.py until its owner
imports from there."""

from pluggably.generation.schemas import CancelResult as CancelResult
from pluggably.generation.schemas import RequestDetails as RequestDetails
from pluggably.generation.schemas import RequestStatus as RequestStatus
