"""Domain errors. Everything below ``api/`` raises these; one handler renders them
in the envelope of API.md §2. Nothing here knows about HTTP frameworks."""

from __future__ import annotations

from typing import Any, ClassVar


class ConfigError(Exception):
    """A setting is wrong. Carries one line meant for the operator."""


class GatewayError(Exception):
    """An error with a stable code, an HTTP status and a message a user can act on."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        super().__init__(self.message)


class ValidationFailed(GatewayError):
    code = "validation_error"
    status = 422
    default_message = "The request did not pass validation."


class InvalidJson(GatewayError):
    code = "invalid_json"
    status = 400
    default_message = "The request body is not valid JSON."


class Unauthorized(GatewayError):
    code = "unauthorized"
    status = 401
    default_message = (
        "A valid credential is required: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'."
    )

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="pluggably"')


class Forbidden(GatewayError):
    code = "forbidden"
    status = 403
    default_message = "Your credential does not allow this operation."


class NotFound(GatewayError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class ModelNotFound(GatewayError):
    code = "model_not_found"
    status = 404
    default_message = "Model not found."


class SessionNotFound(GatewayError):
    code = "session_not_found"
    status = 404
    default_message = "No such session."


class SessionClosed(GatewayError):
    code = "session_closed"
    status = 400
    default_message = "The session is closed; start a new one."


class JobNotFound(GatewayError):
    code = "job_not_found"
    status = 404
    default_message = "Job not found."


class ArtifactNotFound(GatewayError):
    code = "artifact_not_found"
    status = 404
    default_message = "Artifact not found."


class ArtifactExpired(GatewayError):
    code = "artifact_expired"
    status = 410
    default_message = "This artifact link has expired."


class StorageFull(GatewayError):
    code = "storage_full"
    status = 507
    default_message = "The storage quota would be exceeded."


class Conflict(GatewayError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is larger than this server accepts."


class RateLimited(GatewayError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests; retry later."


class BudgetExceeded(GatewayError):
    code = "budget_exceeded"
    status = 429
    default_message = "The spend budget for this period is used up."


class ModelNotAllowed(GatewayError):
    code = "model_not_allowed"
    status = 403
    default_message = "This credential may not use that model."


class Timeout(GatewayError):
    code = "timeout"
    status = 504
    default_message = "The operation timed out."


class FeatureNotSupported(GatewayError):
    code = "feature_not_supported"
    status = 400
    default_message = "This feature is not supported here."


class ProviderNotConfigured(GatewayError):
    code = "provider_not_configured"
    status = 400
    default_message = "No credential is configured for this provider."


class ModelRequired(GatewayError):
    code = "model_required"
    status = 400
    default_message = "This request needs a model."


class RequestNotFound(GatewayError):
    code = "request_not_found"
    status = 404
    default_message = "Request not found."


class UpstreamError(GatewayError):
    code = "upstream_error"
    status = 502
    default_message = "The upstream service answered with an error."


class NotReady(GatewayError):
    code = "not_ready"
    status = 503
    default_message = "The server is not ready yet."


class BackendUnavailable(GatewayError):
    code = "backend_unavailable"
    status = 503
    default_message = "A backend this request needs is unavailable."


class DatabaseUnavailable(GatewayError):
    """The database did not answer: locked by another process, or unreachable. Nothing
    was changed; the same request can be sent again."""

    code = "database_unavailable"
    status = 503
    default_message = "The database is unavailable or busy; try again shortly."


class QueueFull(GatewayError):
    code = "queue_full"
    status = 503
    default_message = "The model's queue is full; try again shortly."


class ModelLoading(GatewayError):
    code = "model_loading"
    status = 503
    default_message = "The model is loading; try again shortly."


class InvalidParameter(GatewayError):
    code = "invalid_parameter"
    status = 400
    default_message = "A parameter is invalid."


class UnsupportedProvider(GatewayError):
    code = "unsupported_provider"
    status = 400
    default_message = "This provider is not supported."


class InvalidInvite(GatewayError):
    code = "invalid_invite"
    status = 400
    default_message = "This invite is not valid."


class CredentialUnreadable(GatewayError):
    """A sealed secret failed to open: its key is missing or the data was altered.
    API.md §2 files this under ``internal_error``; the message says what to do."""

    code = "internal_error"
    status = 500
    default_message = "A stored credential could not be decrypted."


def status_of_code(code: str) -> int:
    """The HTTP status of a gateway error code (a stream's error frame carries only the
    code), from every GatewayError subclass, wherever it is defined; 500 if unknown."""
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls.status
        pending += cls.__subclasses__()
    return 500
