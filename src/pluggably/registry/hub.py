"""The Hugging Face hub, through ``huggingface_hub``: search, repo details and
file URLs. Blocking client calls run in worker threads; every hub failure becomes
a gateway error with a message an operator can act on, never a 500."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils._headers import build_hf_headers

from pluggably.errors import (
    BackendUnavailable,
    GatewayError,
    ModelNotFound,
    UpstreamError,
    ValidationFailed,
)

T = TypeVar("T")

# huggingface_hub 2.x speaks httpx2 (a fork with its own exception classes).
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, OSError)
try:
    import httpx2

    _TRANSPORT_ERRORS += (httpx2.HTTPError,)
except ImportError:  # older huggingface_hub on httpx
    pass
_HUB_FAILURES: tuple[type[Exception], ...] = (HfHubHTTPError, *_TRANSPORT_ERRORS)
DEFAULT_ENDPOINT = "https://huggingface.co"


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token
        self.api = HfApi(endpoint=self.endpoint, token=token or False)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except GatewayError:
            raise
        except HFValidationError as exc:
            raise ValidationFailed(
                f"Not a valid Hugging Face repo id: {_first_line(exc)}"
            ) from None
        # GatedRepoError is a RepositoryNotFoundError: it must come first.
        except GatedRepoError:
            raise UpstreamError(
                "This Hugging Face repo is gated: accept its license on the hub and set "
                "PLUGGABLY_HF_TOKEN to a token of that account."
            ) from None
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise ModelNotFound(
                f"The Hugging Face hub has no such model or revision: {_first_line(exc)}"
            ) from None
        except EntryNotFoundError as exc:
            raise ModelNotFound(f"No such file in the repo: {_first_line(exc)}") from None
        except _HUB_FAILURES as exc:
            raise BackendUnavailable(
                f"The Hugging Face hub at {self.endpoint} is unreachable or failing "
                f"({type(exc).__name__}); try again later.",
                retry_after=30,
            ) from None

    async def model_info(self, repo_id: str, revision: str | None = None) -> ModelInfo:
        try:
            return await self.call(
                self.api.model_info, repo_id, revision=revision, files_metadata=True
            )
        except ModelNotFound:
            at = f" at revision '{revision}'" if revision else ""
            raise ModelNotFound(
                f"The Hugging Face hub at {self.endpoint} has no model '{repo_id}'{at} "
                "(or it is private: set PLUGGABLY_HF_TOKEN)."
            ) from None

    def file_url(self, repo_id: str, path: str, revision: str) -> str:
        return hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)

    def headers(self) -> dict[str, str]:
        return dict(build_hf_headers(token=self.token or False, library_name="pluggably"))


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
