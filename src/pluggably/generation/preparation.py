"""Before a generation runs: who calls, the candidates in order, the conversation (a
session's history trimmed to the model's window), the checked parameters. Everything
here can fail with a plain HTTP error, before a stream's 200 goes out or a request is
queued."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pluggably.auth.principal import Principal
from pluggably.db import Database
from pluggably.errors import GatewayError, InvalidParameter
from pluggably.generation import inputs
from pluggably.generation.background import Background
from pluggably.generation.callers import CallerCache
from pluggably.generation.capable import capable, embedders, local_unable
from pluggably.generation.context import DEFAULT_WINDOW, estimate_tokens, fit, provider_window
from pluggably.generation.cooling import cooldown_key
from pluggably.generation.params import validate_default, validate_parameters
from pluggably.generation.plan import Plan
from pluggably.generation.records import RequestRecords
from pluggably.generation.schemas import GenerateRequest
from pluggably.generation.turns import RegenerateMode, SessionTurns, Turn
from pluggably.ids import new_id
from pluggably.lifecycle.local import LocalBackend
from pluggably.messages import NO_FEATURES, Message
from pluggably.observability.logging import get_logger
from pluggably.providers.directory import ProviderDirectory
from pluggably.registry.models import Model
from pluggably.registry.service import RegistryService
from pluggably.routing.cooldown import Cooldowns
from pluggably.routing.resolve import LOCAL, Router, Target, modality_of
from pluggably.runtimes.base import ModelSpec
from pluggably.runtimes.factory import check_available
from pluggably.usage.limiter import Levels, Limiter, estimate

log = get_logger("pluggably.generation")


class Preparation:
    def __init__(
        self,
        db: Database,
        router: Router,
        callers: CallerCache,
        *,
        providers: ProviderDirectory,
        cooldowns: Cooldowns,
        registry: RegistryService,
        local: LocalBackend,
        turns: SessionTurns,
        records: RequestRecords,
        background: Background,
        limiter: Limiter,
        local_context_tokens: int,
    ) -> None:
        self.db, self.router, self.callers = db, router, callers
        self.providers, self.cooldowns = providers, cooldowns
        self.registry, self.local, self.turns = registry, local, turns
        self.records, self.background, self.limiter = records, background, limiter
        self.local_context_tokens = local_context_tokens
        self._windows: dict[str, int] = {}  # local model id -> its context window

    async def prepare(
        self,
        principal: Principal,
        body: GenerateRequest,
        *,
        regenerate: RegenerateMode | None = None,
    ) -> Plan:
        """The plan: routing, parameters, the session's context (one transaction)."""
        turn: Turn | None = None
        embeds = inputs.embeds(body)
        if embeds and body.session_id is not None:
            raise inputs.not_a_turn()
        messages = inputs.conversation(body) if body.session_id is None and not embeds else []
        async with self.db.session() as session:  # one transaction for all the lookups
            user, credentials = await self.callers.get(session, principal)
            if body.session_id is not None:
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
            levels = self.limiter.levels(principal, user.limits)
            if levels.any():
                targets = self.limiter.allowed(
                    levels, targets, targets[0], named=body.model is not None
                )
            plan = Plan("", principal, user.username, "text", messages, {}, targets)
            plan.spend_scopes = levels.spend_scopes()
            plan.credentials, plan.requested, plan.primary = credentials, body.model, targets[0]
            plan.features = inputs.features(body)
            if embeds:
                plan.targets = await self._embedders(session, plan, body)
            elif plan.features is not NO_FEATURES or plan.has_images:
                plan.targets = await capable(
                    session, plan, targets, providers=self.providers, registry=self.registry
                )
            local_row = await self._order(session, plan, body)
            if plan.modality == "embedding":  # asked for, or the named model embeds
                plan.targets = await self._embedders(session, plan, body)
                plan.texts, plan.messages = inputs.texts(body), []
            plan.parameters = await self._parameters(session, plan, body, local_row)
            if turn is not None and plan.modality == "text":
                plan.messages = self._fit(plan.messages, plan.targets[0], plan.parameters)
            request_id = await self._admit(session, plan, levels, turn, body)
        plan.request_id = self.records.start(
            principal.user_id, plan.modality, body.stream, principal.token_id, request_id
        )
        plan.turn, plan.started = turn, time.perf_counter()  # timings count from here
        return plan

    async def _admit(
        self,
        session: AsyncSession,
        plan: Plan,
        levels: Levels,
        turn: Turn | None,
        body: GenerateRequest,
    ) -> str:
        """The request's id, once the caller's limits admit it (the last check: nothing
        after it refuses but the session's storage bound, which gives the slot back) and
        the session has taken its new turns."""
        request_id = new_id("req")
        if levels.any():
            tokens = estimate(plan.prompt_estimate(), plan.texts, plan.parameters)
            plan.admission = await self.limiter.admit(levels, request_id, tokens)
        if turn is not None:
            try:
                await self.turns.accept(session, turn, body, plan.modality)
            except BaseException:
                await self.limiter.release(plan.admission)
                raise
        return request_id

    async def _embedders(
        self, session: AsyncSession, plan: Plan, body: GenerateRequest
    ) -> list[Target]:
        """The candidates that embed (sessions hold conversations, not embeddings)."""
        if body.session_id is not None:
            raise inputs.not_a_turn()
        return await embedders(
            session, plan, plan.targets, providers=self.providers, registry=self.registry
        )

    async def _order(
        self, session: AsyncSession, plan: Plan, body: GenerateRequest
    ) -> Model | None:
        """The candidates, cooling ones last; the plan's modality and local files. With
        ``while_loading: fallback``, a local model that is not loaded yet loads in the
        background while the default model of its modality answers. Returns the first
        candidate's registry row (None for a remote one)."""
        targets = plan.targets
        order = self.cooldowns.order(
            [cooldown_key(self.providers, plan.principal, t) for t in targets]
        )
        targets = [targets[i] for i in order]
        first, local_row = targets[0], None
        if first.provider == LOCAL:
            plan.modality, local_row = await self._local_model(session, body, first, plan)
            if body.while_loading == "fallback" and not self.local.scheduler.is_loaded(first.model):
                default = await self.router.local_default(session, plan.modality)
                if default is not None and default != first:
                    _, default_row = await self._local_model(session, body, default, plan)
                    # A default that cannot do what the request asks does not stand in.
                    if local_unable(default_row, plan.features, images=plan.has_images) is None:
                        self._load_in_background(plan.local_specs[first.model])
                        plan.loading_fallback, targets = first.label, [default, *targets[1:]]
        else:
            plan.modality = modality_of(body, first)
        for target in targets[1:]:
            if target.provider == LOCAL and target.model not in plan.local_specs:
                try:
                    await self._local_model(session, body, target, plan)
                except GatewayError:  # an unusable local fallback is skipped
                    targets = [t for t in targets if t != target]
        plan.targets = targets
        return local_row

    async def _parameters(
        self, session: AsyncSession, plan: Plan, body: GenerateRequest, local_row: Model | None
    ) -> dict[str, Any]:
        if not body.parameters:  # most requests have none: no schema to read or compile
            return {}
        if local_row is not None:
            schema = await self.registry.parameter_schema(session, local_row)
            return validate_parameters(body.parameters, schema)
        return validate_default(body.parameters, plan.targets[0].label, plan.modality)

    def _fit(
        self, messages: list[Message], target: Target, parameters: dict[str, Any]
    ) -> list[Message]:
        """A session's history trimmed (oldest turns first) to the target's window."""
        count = estimate_tokens
        if target.provider == LOCAL:
            window = self._windows.get(target.model, DEFAULT_WINDOW)
            runtime = self.local.scheduler.runtime_of(target.model)
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
        self, session: AsyncSession, body: GenerateRequest, target: Target, plan: Plan
    ) -> tuple[str, Model]:
        """A local target's files (into the plan), modality and registry row."""
        model = await self.registry.get(session, target.model)
        if body.modality and body.modality != model.modality:
            raise InvalidParameter(
                f"'{model.id}' is a {model.modality} model; it cannot answer with "
                f"modality '{body.modality}'."
            )
        plan.local_specs[model.id] = spec = self.registry.spec_of(model)
        window = (model.capabilities or {}).get("max_context_tokens")
        if model.format == "gguf":
            window = min(window or self.local_context_tokens, self.local_context_tokens)
        self._windows[model.id] = int(window or DEFAULT_WINDOW)
        check_available(spec)  # a missing runtime library: 400 before anything runs
        return model.modality, model

    def _load_in_background(self, spec: ModelSpec) -> None:
        scheduler = self.local.scheduler

        async def load() -> None:
            try:
                await scheduler.ensure_loaded(spec)
            except Exception as exc:
                log.warning("background_load_failed", model_id=spec.model_id, error=str(exc))

        self.background.start(load())
