"""One request's plan (who asks, what for, which candidates) and the helpers that
turn what happened into results and clean errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialSnapshot
from pluggably.errors import GatewayError, ProviderNotConfigured, UpstreamError
from pluggably.generation.context import cost, estimate_tokens
from pluggably.generation.schemas import Attempt, Selection
from pluggably.messages import NO_FEATURES, Features, Message
from pluggably.observability.logging import get_logger
from pluggably.providers.base import Credential
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.errors import redact
from pluggably.routing.resolve import LOCAL, Target
from pluggably.runtimes.base import ModelSpec
from pluggably.stops import as_list

if TYPE_CHECKING:
    from pluggably.generation.turns import Turn
    from pluggably.usage.counters import Admission

log = get_logger("pluggably.generation")


@dataclass
class Plan:
    request_id: str
    principal: Principal
    username: str | None
    modality: str
    messages: list[Message]
    parameters: dict[str, Any]
    targets: list[Target]
    started: float = field(default_factory=time.perf_counter)
    attempts: list[Attempt] = field(default_factory=list)
    credentials: CredentialSnapshot | None = None  # read with the plan, decrypted on use
    local_specs: dict[str, ModelSpec] = field(default_factory=dict)  # local targets' files
    loading_fallback: str | None = None  # the local model that was loading (while_loading)
    queue_ms: float = 0.0
    load_ms: float = 0.0
    queued: asyncio.Event = field(default_factory=asyncio.Event)  # set when it waits in a queue
    position: int | None = None
    turn: Turn | None = None  # the session this generation continues
    trying: Target | None = None  # the candidate being tried now
    served: Target | None = None  # the candidate that answered
    completed: bool = False  # its answer is written out (turn, record, limits)
    error: GatewayError | None = None  # why every candidate failed (streams)
    requested: str | None = None  # the model id as the caller wrote it (None: auto)
    primary: Target | None = None  # what ``requested`` resolved to
    features: Features = NO_FEATURES  # tools, tool choice, output format, reasoning
    texts: list[str] = field(default_factory=list)  # modality embedding: what to embed
    admission: Admission | None = None  # what the caller's limits counted (usage/)
    spend_scopes: tuple[str, ...] = ()  # the budget scopes its cost counts against

    def reported_model(self, served: Target) -> str:
        """The ``model`` a response names: the id the caller asked for, as they wrote it
        (``gpt-4o``, ``local/gemma``), since clients match answers to requests by it; the
        served model's label when the caller named none, or when another model answered
        (a fallback), so an answer never claims a model that did not write it.
        ``selection.selected_model`` always names the served model."""
        if self.requested is None or served != self.primary:
            return served.label
        return self.requested

    @property
    def has_images(self) -> bool:
        """The conversation holds images (a model must read them to answer)."""
        return any(m.images for m in self.messages)

    @property
    def stops(self) -> list[str]:
        """The caller's stop sequences."""
        return as_list(self.parameters.get("stop")) if self.modality == "text" else []

    def prompt_estimate(self) -> int:
        """The prompt's size in tokens, estimated (for an answer whose upstream never
        said: a stream the gateway cut short)."""
        return sum(cost(m, estimate_tokens) for m in self.messages)

    def skipped(self, target: Target, reason: str) -> None:
        """``target`` cannot do what the request asks: it is not called."""
        self.attempts.append(
            Attempt(
                model=target.label,
                provider=target.provider,
                error_code="feature_not_supported",
                reason=reason,
            )
        )

    def answered_by(self, target: Target) -> None:
        """``target`` answers: its attempt is the last one."""
        self.attempts.append(Attempt(model=target.label, provider=target.provider, error_code=None))
        self.served = target

    def selection(self, served: Target) -> Selection:
        failed = [a for a in self.attempts if a.error_code]
        reason = None
        if failed:
            last = failed[-1]
            reason = (
                f"{last.model} was skipped: {last.reason}"
                if last.reason
                else f"{last.provider} failed with {last.error_code}"
            )
        if self.loading_fallback is not None and served.label != self.loading_fallback:
            reason = (
                f"{self.loading_fallback} is loading; the default {self.modality} model answered"
            )
        return Selection(
            selected_model=served.label,
            selected_provider=served.provider,
            fallback_used=reason is not None,
            fallback_reason=reason,
            attempts=self.attempts,
        )


def first_commercial(plan: Plan, providers: ProviderDirectory) -> str | None:
    return next(
        (
            t.provider
            for t in plan.targets
            if t.provider != LOCAL and not providers.is_endpoint(t.provider)
        ),
        None,
    )


def credential_for(
    providers: ProviderDirectory, credentials: CredentialSnapshot | None, provider: str
) -> Credential:
    """The credential a call to ``provider`` goes with: an operator endpoint's own, else
    the caller's (their stored key, or a server key they may use)."""
    if providers.is_endpoint(provider):
        return providers.endpoint_credential(provider)
    credential = credentials.resolve(provider) if credentials is not None else None
    if credential is None:
        raise ProviderNotConfigured(
            f"You have no credential for {provider}: store one with POST /v1/users/provider-keys."
        )
    return credential


def as_gateway_error(exc: BaseException, plan: Plan, target: Target) -> GatewayError:
    """An adapter bug or an odd upstream answer must end as a clean error (and a
    finished record), never as a 500 that leaves the request 'running'."""
    if isinstance(exc, GatewayError):
        return exc
    log.exception("provider_call_failed", request_id=plan.request_id, provider=target.provider)
    return UpstreamError(
        f"{target.provider} ({target.model}) answered in a way this gateway cannot read."
    )


def scrubbed(exc: GatewayError, credential: Credential) -> GatewayError:
    """Upstream messages are quoted to users and stored in request records: never with
    a key in them, whole or in part (some vendors echo the key they refused, and an
    operator's key must not reach users). ``credential`` is what the call used: the
    user's own, the operator's server-wide key or an operator endpoint's key."""
    exc.message = redact(exc.message, list(_secrets(credential)))
    return exc


# The fields of a credential that are secret. Others are not, and redacting their runs
# would garble ordinary messages: a service account's project_id, client_email and
# token_uri (any "https://" run), or a credential_type such as "service_account".
SECRET_FIELDS = frozenset(
    {"api_key", "oauth_token", "private_key", "private_key_id", "client_secret", "refresh_token"}
)


def _secrets(value: Any, name: str = "") -> Iterator[str]:
    """Every secret string of a credential, nested ones included (a service account)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets(item, str(key))
    elif isinstance(value, str) and name in SECRET_FIELDS:
        yield value
