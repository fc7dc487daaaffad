"""One generation: resolve the candidates, call them in order until one answers
(the same loop for JSON and for streams), normalise, record, measure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from pluggably.artifacts.service import ArtifactService
from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialService
from pluggably.db import Database
from pluggably.errors import (
    Conflict,
    FeatureNotSupported,
    GatewayError,
    InvalidParameter,
    ProviderNotConfigured,
)
from pluggably.generation import inputs
from pluggably.generation.callers import CallerCache
from pluggably.generation.context import DEFAULT_WINDOW, estimate_tokens, fit, provider_window
from pluggably.generation.live import LiveRequest, LiveRequests
from pluggably.generation.local_calls import completion_of, local_events, notice_frame, usage_of
from pluggably.generation.outputs import build_output
from pluggably.generation.params import validate_default, validate_parameters
from pluggably.generation.plan import (
    Plan,
    as_gateway_error,
    first_commercial,
    scrubbed,
    usage_info,
)
from pluggably.generation.records import RequestRecords
from pluggably.generation.schemas import (
    Accepted,
    Attempt,
    CreditsStatus,
    GenerateRequest,
    GenerateResponse,
    Output,
    Timings,
)
from pluggably.generation.stopping import cut_completion, cut_stream
from pluggably.generation.turns import RegenerateMode, SessionTurns, Turn
from pluggably.lifecycle.local import Loading, LocalBackend, LocalEnd, Queued
from pluggably.lifecycle.scheduler import Reservation
from pluggably.messages import Message
from pluggably.observability.logging import get_logger
from pluggably.observability.metrics import Metrics
from pluggably.providers.base import (
    Completion,
    Credential,
    Delta,
    Provider,
    ProviderCall,
    StreamEnd,
)
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.errors import is_retryable
from pluggably.providers.model_lists import Discovery
from pluggably.registry.models import Model
from pluggably.registry.service import RegistryService
from pluggably.routing.cooldown import Cooldowns
from pluggably.routing.resolve import LOCAL, Router, Target, modality_of
from pluggably.runtimes.base import ModelSpec
from pluggably.runtimes.factory import check_available
from pluggably.users.service import AccountService

log = get_logger("pluggably.generation")


class GenerationService:
    def __init__(
        self,
        db: Database,
        router: Router,
        providers: ProviderDirectory,
        credentials: CredentialService,
        accounts: AccountService,
        records: RequestRecords,
        metrics: Metrics,
        cooldowns: Cooldowns | None = None,
        *,
        local: LocalBackend | None = None,
        registry: RegistryService | None = None,
        artifacts: ArtifactService | None = None,
        inline_output_bytes: int = 256 * 1024,
        turns: SessionTurns | None = None,
        local_context_tokens: int = 4096,
    ) -> None:
        self.db, self.router, self.providers = db, router, providers
        self.credentials, self.accounts, self.records, self.metrics = (
            credentials,
            accounts,
            records,
            metrics,
        )
        self.cooldowns = cooldowns or Cooldowns()
        self.discovery = Discovery()
        self._model_labels: set[str] = set()
        self.callers = CallerCache(accounts, credentials)
        self.live = LiveRequests()
        self.local, self.registry, self.artifacts = local, registry, artifacts
        self.inline_output_bytes = inline_output_bytes
        self.turns = turns
        self.local_context_tokens = local_context_tokens
        self._windows: dict[str, int] = {}  # local model id -> its context window
        self._background: set[asyncio.Task[Any]] = set()  # 202'd requests still running

    # preparation
    async def prepare(
        self,
        principal: Principal,
        body: GenerateRequest,
        *,
        regenerate: RegenerateMode | None = None,
    ) -> Plan:
        """Everything that can fail with a plain HTTP error (routing, parameters, the
        session), done before a stream's 200 goes out or a request is queued."""
        specs: dict[str, ModelSpec] = {}
        loading: str | None = None
        turn: Turn | None = None
        messages = inputs.conversation(body) if body.session_id is None else []
        async with self.db.session() as session:  # one transaction for all the lookups
            user, credentials = await self.callers.get(session, principal)
            if body.session_id is not None:
                if self.turns is None:
                    raise FeatureNotSupported("Sessions are not enabled here.")
                turn = await self.turns.open(session, principal.user_id, body, regenerate)
                messages = turn.messages
                if turn.model is not None and body.model is None:
                    body = body.model_copy(update={"model": turn.model})
            targets = await self.router.candidates(
                session,
                body,
                preferred_model=user.preferred_model,
                has_credential=credentials.usable,
            )
            primary = targets[0]
            order = self.cooldowns.order([self._cooldown_key(principal, t) for t in targets])
            targets = [targets[i] for i in order]
            first = targets[0]
            if first.provider == LOCAL:
                modality, local_row = await self._local_model(session, body, first, specs)
                if body.while_loading == "fallback" and not self._loaded(first):
                    default = await self.router.local_default(session, modality)
                    if default is not None and default != first:
                        await self._local_model(session, body, default, specs)
                        self._load_in_background(specs[first.model])
                        loading, targets = first.label, [default, *targets[1:]]
            else:
                modality, local_row = modality_of(body, first), None
            for target in targets[1:]:
                if target.provider == LOCAL and target.model not in specs:
                    try:
                        await self._local_model(session, body, target, specs)
                    except GatewayError:  # an unusable local fallback is skipped
                        targets = [t for t in targets if t != target]
            parameters: dict[str, Any] = {}
            if body.parameters:  # most requests have none: no schema to read or compile
                if local_row is not None and self.registry is not None:
                    schema = await self.registry.parameter_schema(session, local_row)
                    parameters = validate_parameters(body.parameters, schema)
                else:
                    parameters = validate_default(body.parameters, first.label, modality)
            if turn is not None:
                if modality == "text":
                    messages = self._fit(messages, targets[0], parameters)
                await self.turns.accept(session, turn, body, modality)  # type: ignore[union-attr]
        request_id = self.records.start(principal.user_id, modality, body.stream)
        plan = Plan(request_id, principal, user.username, modality, messages, parameters, targets)
        plan.credentials, plan.local_specs, plan.loading_fallback = credentials, specs, loading
        plan.turn, plan.requested, plan.primary = turn, body.model, primary
        return plan

    def _fit(
        self, messages: list[Message], target: Target, parameters: dict[str, Any]
    ) -> list[Message]:
        """A session's history trimmed (oldest turns first) to the target's window."""
        count = estimate_tokens
        if target.provider == LOCAL:
            window = self._windows.get(target.model, DEFAULT_WINDOW)
            runtime = self.local.scheduler.runtime_of(target.model) if self.local else None
            counter = getattr(runtime, "count_tokens", None)
            if counter is not None:
                count = lambda text: counter(text) or estimate_tokens(text)  # noqa: E731
        else:
            window = provider_window(target.model)
        reserve = min(int(parameters.get("max_tokens") or 512), window // 2)
        fitted, dropped = fit(messages, window=window, reserve=reserve, count=count)
        if dropped:
            log.info("session_context_trimmed", dropped_turns=dropped, window=window)
        return fitted

    async def _local_model(
        self, session: Any, body: GenerateRequest, target: Target, specs: dict[str, ModelSpec]
    ) -> tuple[str, Model]:
        """A local target's files (into ``specs``), modality and registry row."""
        if self.local is None or self.registry is None:
            raise ProviderNotConfigured("Local models are not enabled here.")
        model = await self.registry.get(session, target.model)
        if body.modality and body.modality != model.modality:
            raise InvalidParameter(
                f"'{model.id}' is a {model.modality} model; it cannot answer with "
                f"modality '{body.modality}'."
            )
        specs[model.id] = spec = self.registry.spec_of(model)
        window = (model.capabilities or {}).get("max_context_tokens")
        if model.format == "gguf":
            window = min(window or self.local_context_tokens, self.local_context_tokens)
        self._windows[model.id] = int(window or DEFAULT_WINDOW)
        check_available(spec)  # a missing runtime library: 400 before anything runs
        return model.modality, model

    def _loaded(self, target: Target) -> bool:
        return self.local is not None and self.local.scheduler.is_loaded(target.model)

    def _load_in_background(self, spec: ModelSpec) -> None:
        assert self.local is not None
        scheduler = self.local.scheduler

        async def load() -> None:
            try:
                await scheduler.ensure_loaded(spec)
            except Exception as exc:
                log.warning("background_load_failed", model_id=spec.model_id, error=str(exc))

        self.keep(asyncio.ensure_future(load()))

    def keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """At shutdown: cancel what still runs here (202'd requests, background loads)
        and wait for it to wind down; their records end as cancelled."""
        for live in self.live.all():
            live.cancel_requested = True
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def forget_caller(self, user_id: str) -> None:
        """A profile or a credential changed: the next request reads them again."""
        self.callers.forget(user_id)

    async def _credential(self, plan: Plan, target: Target) -> Credential:
        if target.provider == LOCAL:
            return {}
        if self.providers.is_endpoint(target.provider):
            return self.providers.endpoint_credential(target.provider)
        assert plan.credentials is not None
        credential = plan.credentials.resolve(target.provider)
        if credential is None:
            raise ProviderNotConfigured(
                f"You have no credential for {target.provider}: store one with "
                "POST /v1/users/provider-keys."
            )
        return credential

    def _call(self, plan: Plan, target: Target) -> tuple[Any, ProviderCall]:
        provider = self.providers.get(target.provider)
        assert provider is not None
        if plan.modality not in provider.modalities:
            raise ProviderNotConfigured(
                f"{target.provider} does not generate {plan.modality} here."
            )
        return provider, ProviderCall(target.model, plan.messages, plan.parameters, plan.modality)

    def _failed(self, plan: Plan, target: Target, exc: GatewayError) -> bool:
        """Record the attempt; True when the next candidate should be tried."""
        plan.attempts.append(
            Attempt(model=target.label, provider=target.provider, error_code=exc.code)
        )
        self.metrics.generation_errors.labels(target.provider, exc.code).inc()
        if target.provider != LOCAL:
            self.discovery.observe(plan.principal.user_id, target.provider, exc)
        if is_retryable(exc) and target.provider != LOCAL:  # a busy local model is not broken
            self.cooldowns.failed(self._cooldown_key(plan.principal, target))
        last = len(plan.attempts) == len(plan.targets)
        return not last and (is_retryable(exc) or isinstance(exc, ProviderNotConfigured))

    # JSON
    async def generate(self, plan: Plan, *, wait: bool = True) -> GenerateResponse | Accepted:
        """The response; without ``wait``, a request that has to queue for a local model
        answers 202 at once (``Accepted``) and goes on running here."""
        live = self.live.open(plan.request_id, plan.principal.user_id)
        if wait or plan.targets[0].provider != LOCAL:
            return await self._generate_and_close(plan, live)
        task = asyncio.ensure_future(self._generate_and_close(plan, live))
        queued = asyncio.ensure_future(plan.queued.wait())
        try:
            await asyncio.wait({task, queued}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            queued.cancel()
        if task.done():
            return task.result()
        self.keep(task)
        position = plan.position or 1
        assert self.local is not None
        return Accepted(
            request_id=plan.request_id,
            queue_position=position,
            estimated_wait_ms=self.local.scheduler.estimated_wait_ms(
                plan.targets[0].model, position
            ),
        )

    async def _generate_and_close(self, plan: Plan, live: LiveRequest) -> GenerateResponse:
        try:
            return await self._generate(plan, live)
        finally:
            self.live.close(plan.request_id, live.status)

    async def _complete(self, plan: Plan, target: Target, live: LiveRequest) -> Completion:
        """A local target's JSON answer; its queue positions and text reach listeners."""
        assert self.local is not None
        # Closed on the way out, not left to the garbage collector: closing it is what
        # gives the model's slot back.
        with self._place(plan, target):
            async with contextlib.aclosing(local_events(self.local, plan, target)) as events:
                async for event in events:
                    if isinstance(event, Queued | Loading):
                        live.status = "queued" if isinstance(event, Queued) else "running"
                        live.position = plan.position
                        live.publish(notice_frame(plan, target, event))
                    elif isinstance(event, LocalEnd):
                        return completion_of(event.result)
                    else:
                        live.status, live.position = "running", None
                        self.live.delta(plan.request_id, event.text)
        raise Conflict("The local model ended without an answer.")  # pragma: no cover

    async def _generate(self, plan: Plan, live: LiveRequest) -> GenerateResponse:
        error: GatewayError | None = None
        for target in plan.targets:
            credential: Credential = {}
            try:
                if live.cancel_requested:
                    return await self._cancelled(plan, target, live)
                if target.provider == LOCAL:
                    live.task = asyncio.ensure_future(self._complete(plan, target, live))
                else:
                    provider, call = self._call(plan, target)
                    credential = await self._credential(plan, target)
                    live.task = asyncio.ensure_future(provider.complete(call, credential))
                completion = await live.task
                if target.provider != LOCAL and _beyond(provider, plan.stops):
                    completion = cut_completion(completion, plan.stops)
                output = await self._output(plan, completion)
                response = self._response(plan, target, completion, output, first_token_ms=None)
            except asyncio.CancelledError:
                if not live.cancel_requested:
                    raise
                return await self._cancelled(plan, target, live)
            except Exception as raw:
                exc = scrubbed(as_gateway_error(raw, plan, target), credential)
                error = exc
                if self._failed(plan, target, exc):
                    continue
                break
            plan.attempts.append(
                Attempt(model=target.label, provider=target.provider, error_code=None)
            )
            response.selection = plan.selection(target)
            await self._done(plan, target, response)
            live.status = "completed"
            return response
        assert error is not None
        live.status = "failed"
        await self.records.finish(
            plan.request_id, status="failed", error=(error.code, error.message)
        )
        raise error

    async def _cancelled(self, plan: Plan, target: Target, live: LiveRequest) -> GenerateResponse:
        live.status = "cancelled"
        completion = Completion(text=live.partial_text or None, finish_reason="cancelled")
        output = Output(text=completion.text)
        response = self._response(plan, target, completion, output, first_token_ms=None)
        await self.records.finish(
            plan.request_id,
            status="cancelled",
            model=target.label,
            provider=target.provider,
            response=response.model_dump(mode="json"),
        )
        await self._record_turn(plan, target, output, "cancelled")
        return response

    async def _record_turn(
        self, plan: Plan, target: Target, output: Output, finish_reason: str
    ) -> None:
        if plan.turn is None or self.turns is None:
            return
        await self.turns.answered(
            plan.turn,
            model=target.label,
            provider=target.provider,
            modality=plan.modality,
            output=output,
            finish_reason=finish_reason,
            request_id=plan.request_id,
        )

    # streams
    async def stream(self, plan: Plan) -> AsyncIterator[dict[str, Any]]:
        live = self.live.open(plan.request_id, plan.principal.user_id)
        live.task = asyncio.current_task()
        status = "cancelled"
        try:
            async for frame in self._stream(plan, live):
                event = frame.get("event")
                if event in {"complete", "error"}:
                    status = "completed" if event == "complete" else "failed"
                elif event in {"queued", "loading"}:
                    live.status = "queued" if event == "queued" else "running"
                    live.position = frame.get("queue_position")
                    live.publish(frame)
                elif "choices" in frame:
                    live.status, live.position = "running", None
                    self.live.delta(plan.request_id, frame["choices"][0]["delta"]["content"])
                yield frame
                # A surface reads the first frame in the request's task and the rest in
                # the SSE layer's: a cancel must reach whichever task reads now.
                live.task = asyncio.current_task()
        except Exception:
            log.exception("stream_failed", request_id=plan.request_id)
            status = "failed"
            await self.records.finish(
                plan.request_id, status="failed", error=("internal_error", "The stream failed.")
            )
            yield {"event": "error", "code": "internal_error", "message": "The stream failed."}
        finally:
            if status == "cancelled":  # the client went away, or POST …/cancel
                with anyio.CancelScope(shield=True):
                    await self.records.finish(
                        plan.request_id,
                        status="cancelled",
                        response={
                            "output": {"text": live.partial_text},
                            "finish_reason": "cancelled",
                        },
                    )
                    if plan.served is not None:
                        partial = Output(text=live.partial_text)
                        await self._record_turn(plan, plan.served, partial, "cancelled")
            self.live.close(plan.request_id, status)

    async def _stream(self, plan: Plan, live: LiveRequest) -> AsyncIterator[dict[str, Any]]:
        error: GatewayError | None = None
        for target in plan.targets:
            upstream: AsyncIterator[Any] | None = None
            credential: Credential = {}
            if live.cancel_requested:
                return
            try:
                if target.provider == LOCAL:
                    upstream = self._local_stream(plan, target)
                else:
                    provider, call = self._call(plan, target)
                    credential = await self._credential(plan, target)
                    upstream = provider.stream(call, credential)
                    if _beyond(provider, plan.stops):
                        upstream = cut_stream(upstream, plan.stops, plan.prompt_estimate)
                first = await anext(upstream)
                while isinstance(first, Queued | Loading):  # waiting: before the first token
                    yield notice_frame(plan, target, first)
                    first = await anext(upstream)
            except Exception as raw:
                if upstream is not None:
                    await upstream.aclose()  # type: ignore[attr-defined]
                exc = scrubbed(as_gateway_error(raw, plan, target), credential)
                error = exc
                if self._failed(plan, target, exc):
                    continue
                break
            plan.attempts.append(
                Attempt(model=target.label, provider=target.provider, error_code=None)
            )
            async for frame in self._relay(plan, target, first, upstream, credential):
                yield frame
            return
        assert error is not None
        plan.error = error
        await self.records.finish(
            plan.request_id, status="failed", error=(error.code, error.message)
        )
        # No model_selected frame came first: the id is here, to look the record up.
        yield {
            "event": "error",
            "code": error.code,
            "message": error.message,
            "request_id": plan.request_id,
        }

    async def _local_stream(
        self, plan: Plan, target: Target
    ) -> AsyncIterator[Queued | Loading | Delta | StreamEnd]:
        assert self.local is not None
        with self._place(plan, target):
            async with contextlib.aclosing(local_events(self.local, plan, target)) as events:
                async for event in events:
                    if isinstance(event, LocalEnd):
                        result = event.result
                        yield StreamEnd(
                            result.finish_reason, usage_of(result), result.stop_sequence
                        )
                    else:
                        yield event

    def _place(self, plan: Plan, target: Target) -> Reservation:
        """The request's place for a local target, taken now on its caller's share of
        the model's queue (a refusal raises here, before anything waits); kept if a
        stream's ``admit`` took it already."""
        assert self.local is not None
        scheduler = self.local.scheduler
        return scheduler.reserve(target.model, plan.request_id, plan.principal.user_id)

    async def admit(self, plan: Plan) -> Reservation | None:
        """A native stream's place in its local model's queue, taken before the stream's
        200 goes out: a refusal (the model's queue is full, or the caller already has
        their share of it waiting) is raised here, answered with its own status and
        Retry-After instead of an error frame inside a 200, unless another candidate
        would be tried next. The stream takes the place over; closing what this returns
        gives it back when the stream never started."""
        first = plan.targets[0]
        if first.provider != LOCAL or self.local is None:
            return None
        try:
            return self._place(plan, first)
        except GatewayError as exc:
            if len(plan.targets) > 1:
                return None  # the stream tries it again, then the next candidate
            self._failed(plan, first, exc)
            await self.records.finish(
                plan.request_id, status="failed", error=(exc.code, exc.message)
            )
            raise

    async def _relay(
        self,
        plan: Plan,
        target: Target,
        first: Delta | StreamEnd,
        upstream: AsyncIterator[Any],
        credential: Credential,
    ) -> AsyncIterator[dict[str, Any]]:
        selection = plan.selection(target)
        plan.served = target
        yield {
            "event": "model_selected",
            "request_id": plan.request_id,
            "model": target.label,
            "provider": target.provider,
            "modality": plan.modality,
            "fallback_used": selection.fallback_used,
            "fallback_reason": selection.fallback_reason,
        }
        parts: list[str] = []
        first_token_ms = (time.perf_counter() - plan.started) * 1000
        item = first
        try:
            while isinstance(item, Delta):
                parts.append(item.text)
                yield {"choices": [{"delta": {"content": item.text}}]}
                item = await anext(upstream)
        except Exception as raw:
            exc = scrubbed(as_gateway_error(raw, plan, target), credential)
            self.metrics.generation_errors.labels(target.provider, exc.code).inc()
            await self.records.finish(
                plan.request_id,
                status="failed",
                model=target.label,
                provider=target.provider,
                error=(exc.code, exc.message),
            )
            yield {"event": "error", "code": exc.code, "message": exc.message}
            return
        finally:
            await upstream.aclose()  # type: ignore[attr-defined]
        completion = Completion(
            text="".join(parts),
            finish_reason=item.finish_reason,
            usage=item.usage,
            stop_sequence=item.stop_sequence,
        )
        output = Output(text=completion.text)
        response = self._response(plan, target, completion, output, first_token_ms=first_token_ms)
        await self._done(plan, target, response)
        complete = response.model_dump(mode="json")
        complete["output"].pop("text", None)  # already sent as deltas
        yield {"event": "complete", **complete}

    # results
    async def _output(self, plan: Plan, completion: Completion) -> Output:
        if not (completion.images or completion.mesh or completion.preview):
            return Output(text=completion.text)
        return await build_output(
            completion,
            owner_id=plan.principal.user_id,
            request_id=plan.request_id,
            db=self.db,
            artifacts=self.artifacts,
            inline_bytes=self.inline_output_bytes,
            keep=plan.turn is not None,  # a session keeps its turns' files
        )

    def _response(
        self,
        plan: Plan,
        target: Target,
        completion: Completion,
        output: Output,
        *,
        first_token_ms: float | None,
    ) -> GenerateResponse:
        usage = completion.usage
        return GenerateResponse(
            request_id=plan.request_id,
            model=plan.reported_model(target),
            provider=target.provider,
            modality=plan.modality,
            session_id=plan.turn.chat_id if plan.turn else None,
            state_tokens=plan.turn.state_tokens if plan.turn else None,
            output=output,
            usage=usage_info(usage),
            finish_reason=completion.finish_reason,
            stop_sequence=completion.stop_sequence if completion.finish_reason == "stop" else None,
            selection=plan.selection(target),
            credits_status=self._credits(plan),
            timings=Timings(
                queue_ms=plan.queue_ms,
                load_ms=plan.load_ms,
                first_token_ms=round(first_token_ms, 2) if first_token_ms is not None else None,
                total_ms=round((time.perf_counter() - plan.started) * 1000, 2),
            ),
        )

    MAX_MODEL_LABELS = 500

    def _model_label(self, target: Target) -> str:
        """Model names come from users: past a bound, new ones share one series."""
        if target.model in self._model_labels or len(self._model_labels) < self.MAX_MODEL_LABELS:
            self._model_labels.add(target.model)
            return target.model
        return "other"

    def _cooldown_key(self, principal: Principal, target: Target) -> str:
        """Operator endpoints cool down for everyone; a vendor only for the user whose
        key is failing (another user's key may be fine)."""
        if target.provider == LOCAL or self.providers.is_endpoint(target.provider):
            return target.label
        return f"{principal.user_id}|{target.label}"

    def _credits(self, plan: Plan) -> CreditsStatus | None:
        """What we know of the credits of the commercial provider first asked."""
        provider = first_commercial(plan, self.providers)
        if provider is None:
            return None
        status = self.discovery.credits(plan.principal.user_id, provider)
        return CreditsStatus(provider=provider, status=status)

    async def _done(self, plan: Plan, target: Target, response: GenerateResponse) -> None:
        self.cooldowns.succeeded(self._cooldown_key(plan.principal, target))
        if target.provider != LOCAL:
            self.discovery.observe(plan.principal.user_id, target.provider, None)
        elif self.registry is not None:
            await self.registry.touch(self.db, target.model)
        m, provider = self.metrics, target.provider
        m.child(m.generation_requests, provider, self._model_label(target)).inc()
        m.child(m.generation_latency, provider).observe(response.timings.total_ms / 1000)
        if response.timings.first_token_ms is not None:
            m.child(m.generation_ttft, provider).observe(response.timings.first_token_ms / 1000)
        if response.usage:
            m.child(m.generation_tokens, provider, "prompt").inc(response.usage.prompt_tokens)
            m.child(m.generation_tokens, provider, "completion").inc(
                response.usage.completion_tokens
            )
        await self._record_turn(plan, target, response.output, response.finish_reason)
        stored = response.model_dump(mode="json")
        await self.records.finish(
            plan.request_id,
            status="completed",
            model=target.label,
            provider=target.provider,
            usage=(response.usage.prompt_tokens, response.usage.completion_tokens)
            if response.usage
            else None,
            response=stored,
        )


def _beyond(provider: Provider, stops: list[str]) -> bool:
    """More stop sequences than the upstream applies itself: the gateway cuts the answer
    (local runtimes hold every stop themselves)."""
    return provider.max_stops is not None and len(stops) > provider.max_stops
