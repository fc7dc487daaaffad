"""How a candidate's attempt ends: a failed one is counted and cooled down; an answer
becomes the response (files as inline data or artifacts), its metrics, its request
record and its session turn; a cancelled one keeps its partial text."""

from __future__ import annotations

import time
from typing import Any

from pluggably.artifacts.service import ArtifactService
from pluggably.db import Database
from pluggably.errors import GatewayError, ProviderNotConfigured
from pluggably.generation.context import estimate_tokens
from pluggably.generation.cooling import cooldown_key
from pluggably.generation.outputs import build_output, text_output
from pluggably.generation.plan import Plan, first_commercial
from pluggably.generation.records import RequestRecords
from pluggably.generation.schemas import (
    Attempt,
    CreditsStatus,
    GenerateResponse,
    Output,
    Timings,
    UsageInfo,
)
from pluggably.generation.turns import SessionTurns
from pluggably.observability.metrics import Metrics
from pluggably.providers.base import Completion
from pluggably.providers.directory import ProviderDirectory
from pluggably.providers.errors import is_retryable
from pluggably.providers.model_lists import Discovery
from pluggably.registry.service import RegistryService
from pluggably.routing.cooldown import Cooldowns
from pluggably.routing.resolve import LOCAL, Target
from pluggably.usage.limiter import Limiter
from pluggably.usage.prices import PriceTable


class Outcomes:
    MAX_MODEL_LABELS = 500

    def __init__(
        self,
        db: Database,
        records: RequestRecords,
        metrics: Metrics,
        *,
        providers: ProviderDirectory,
        cooldowns: Cooldowns,
        discovery: Discovery,
        registry: RegistryService,
        artifacts: ArtifactService,
        turns: SessionTurns,
        limiter: Limiter,
        prices: PriceTable,
        inline_output_bytes: int,
    ) -> None:
        self.db, self.records, self.metrics = db, records, metrics
        self.providers, self.cooldowns, self.discovery = providers, cooldowns, discovery
        self.registry, self.artifacts, self.turns = registry, artifacts, turns
        self.inline_output_bytes = inline_output_bytes
        self.limiter, self.prices = limiter, prices
        self._model_labels: set[str] = set()

    def failed(self, plan: Plan, target: Target, exc: GatewayError) -> bool:
        """Record the attempt; True when the next candidate should be tried."""
        plan.attempts.append(
            Attempt(model=target.label, provider=target.provider, error_code=exc.code)
        )
        self.metrics.generation_errors.labels(target.provider, exc.code).inc()
        if target.provider != LOCAL:
            self.discovery.observe(plan.principal.user_id, target.provider, exc)
        if is_retryable(exc) and target.provider != LOCAL:  # a busy local model is not broken
            self.cooldowns.failed(cooldown_key(self.providers, plan.principal, target))
        last = len(plan.attempts) == len(plan.targets)
        return not last and (is_retryable(exc) or isinstance(exc, ProviderNotConfigured))

    async def finish(
        self,
        plan: Plan,
        *,
        status: str,
        target: Target | None = None,
        error: tuple[str, str] | None = None,
        usage: tuple[int, int] | None = None,
        response: dict[str, Any] | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """The one way a request ends: its record, then its limits settled (its real
        tokens replace the estimate, its concurrency slot goes back, its cost counts
        against its budgets)."""
        await self.records.finish(
            plan.request_id,
            status=status,
            model=target.label if target is not None else None,
            provider=target.provider if target is not None else None,
            error=error,
            usage=usage,
            response=response,
            cost_usd=cost_usd,
            latency_ms=(time.perf_counter() - plan.started) * 1000,
        )
        tokens = sum(usage) if usage is not None else None
        await self.limiter.finished(plan.spend_scopes, plan.admission, tokens, cost_usd)

    async def all_failed(self, plan: Plan, error: GatewayError) -> None:
        plan.error = error
        await self.finish(plan, status="failed", error=(error.code, error.message))

    async def broke_off(self, plan: Plan, target: Target, exc: GatewayError) -> None:
        """A stream failed after its first token: nothing falls back any more."""
        self.metrics.generation_errors.labels(target.provider, exc.code).inc()
        await self.finish(plan, status="failed", target=target, error=(exc.code, exc.message))

    async def completed(self, plan: Plan, target: Target, response: GenerateResponse) -> None:
        """The candidate that answered (its attempt is in the plan): its cooldown ends,
        its metrics, session turn and request record."""
        self.cooldowns.succeeded(cooldown_key(self.providers, plan.principal, target))
        if target.provider != LOCAL:
            self.discovery.observe(plan.principal.user_id, target.provider, None)
        else:
            await self.registry.touch(self.db, target.model)
        self._measure(target, response)
        await self.record_turn(plan, target, response.output, response.finish_reason)
        await self.finish(
            plan,
            status="completed",
            target=target,
            usage=(response.usage.prompt_tokens, response.usage.completion_tokens)
            if response.usage
            else None,
            response=response.model_dump(mode="json"),
            cost_usd=response.usage.cost_usd if response.usage else None,
        )
        plan.completed = True

    async def cancelled(self, plan: Plan, target: Target, partial: str) -> GenerateResponse:
        """A JSON request cancelled while a candidate ran: its partial text."""
        completion = Completion(text=partial or None, finish_reason="cancelled")
        output = Output(text=completion.text)
        response = self.response(plan, target, completion, output)
        usage, cost = self._estimate(plan, target, partial)
        await self.finish(
            plan,
            status="cancelled",
            target=target,
            response=response.model_dump(mode="json"),
            usage=usage,
            cost_usd=cost,
        )
        await self.record_turn(plan, target, output, "cancelled")
        return response

    async def stream_cancelled(self, plan: Plan, partial: str) -> None:
        """A stream cancelled (its client went away, or POST …/cancel)."""
        target = plan.served or plan.trying
        usage, cost = self._estimate(plan, target, partial) if target else (None, None)
        await self.finish(
            plan,
            status="cancelled",
            response={"output": {"text": partial}, "finish_reason": "cancelled"},
            usage=usage,
            cost_usd=cost,
        )
        if plan.served is not None:
            await self.record_turn(plan, plan.served, Output(text=partial), "cancelled")

    def _estimate(
        self, plan: Plan, target: Target, partial: str
    ) -> tuple[tuple[int, int], float | None]:
        """What a call cut short used, estimated (its upstream never reported it, but a
        provider bills the prompt and what it wrote): the tokens and their cost count
        against the caller's tpm and budget, so cancelling cannot escape them."""
        prompt = plan.prompt_estimate() + sum(estimate_tokens(text) for text in plan.texts)
        done = estimate_tokens(partial) if partial else 0
        return (prompt, done), self.prices.cost(target.provider, target.model, prompt, done)

    async def record_turn(
        self, plan: Plan, target: Target, output: Output, finish_reason: str
    ) -> None:
        if plan.turn is None:
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

    async def output(self, plan: Plan, completion: Completion) -> Output:
        if not (completion.images or completion.mesh or completion.preview):
            return text_output(completion)
        return await build_output(
            completion,
            owner_id=plan.principal.user_id,
            request_id=plan.request_id,
            db=self.db,
            artifacts=self.artifacts,
            inline_bytes=self.inline_output_bytes,
            keep=plan.turn is not None,  # a session keeps its turns' files
        )

    def response(
        self,
        plan: Plan,
        target: Target,
        completion: Completion,
        output: Output,
        first_token_ms: float | None = None,
    ) -> GenerateResponse:
        """The response to a candidate's answer."""
        finish = completion.finish_reason
        if completion.tool_calls and finish == "stop":  # the answer is the calls
            finish = "tool_calls"
        return GenerateResponse(
            request_id=plan.request_id,
            model=plan.reported_model(target),
            provider=target.provider,
            modality=plan.modality,
            session_id=plan.turn.chat_id if plan.turn else None,
            state_tokens=plan.turn.state_tokens if plan.turn else None,
            output=output,
            usage=self._usage(target, completion),
            finish_reason=finish,
            stop_sequence=completion.stop_sequence if finish == "stop" else None,
            selection=plan.selection(target),
            credits_status=self._credits(plan),
            timings=Timings(
                queue_ms=plan.queue_ms,
                load_ms=plan.load_ms,
                first_token_ms=round(first_token_ms, 2) if first_token_ms is not None else None,
                total_ms=round((time.perf_counter() - plan.started) * 1000, 2),
            ),
            warnings=self._warnings(plan, target),
        )

    def _usage(self, target: Target, completion: Completion) -> UsageInfo | None:
        """The answer's tokens and what it cost. An image priced per image costs
        something without tokens: its usage then counts none."""
        usage = completion.usage
        prompt, done = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        images = len(completion.images)
        cost = self.prices.cost(target.provider, target.model, prompt, done, images)
        if usage is None and not cost:
            return None
        return UsageInfo(
            prompt_tokens=prompt, completion_tokens=done, total_tokens=prompt + done, cost_usd=cost
        )

    def _warnings(self, plan: Plan, target: Target) -> list[str]:
        """What of the request the answering model left out."""
        if plan.features.reasoning is None:  # the one thing a model may leave out
            return []
        if target.provider == LOCAL:
            return [f"'reasoning' was ignored: {target.label} does not reason."]
        provider = self.providers.get(target.provider)
        ignored = provider.ignores(target.model, plan.features) if provider else None
        return [ignored] if ignored else []

    def _model_label(self, target: Target) -> str:
        """Model names come from users: past a bound, new ones share one series."""
        if target.model in self._model_labels or len(self._model_labels) < self.MAX_MODEL_LABELS:
            self._model_labels.add(target.model)
            return target.model
        return "other"

    def _credits(self, plan: Plan) -> CreditsStatus | None:
        """What we know of the credits of the commercial provider first asked."""
        provider = first_commercial(plan, self.providers)
        if provider is None:
            return None
        status = self.discovery.credits(plan.principal.user_id, provider)
        return CreditsStatus(provider=provider, status=status)

    def _measure(self, target: Target, response: GenerateResponse) -> None:
        m, provider, model = self.metrics, target.provider, self._model_label(target)
        m.child(m.generation_requests, provider, model).inc()
        m.child(m.generation_latency, provider).observe(response.timings.total_ms / 1000)
        if response.timings.first_token_ms is not None:
            m.child(m.generation_ttft, provider).observe(response.timings.first_token_ms / 1000)
        usage = response.usage
        if usage is None:
            return
        for kind, tokens in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ):
            m.child(m.generation_tokens, provider, kind).inc(tokens)
            m.child(m.usage_tokens, provider, model, kind).inc(tokens)
        if usage.cost_usd is not None:
            m.child(m.usage_cost, provider, model).inc(usage.cost_usd)
