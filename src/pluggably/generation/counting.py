"""How many tokens a conversation is for the model it would go to (Anthropic's
``messages/count_tokens``): exact with a local model's own tokenizer and chat template,
the upstream's own count where the provider has one (Anthropic), else an estimate that
says it is one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import orjson

from pluggably.auth.principal import Principal
from pluggably.credentials.service import CredentialSnapshot
from pluggably.db import Database
from pluggably.errors import InvalidParameter
from pluggably.generation import inputs
from pluggably.generation.callers import CallerCache
from pluggably.generation.context import cost, estimate_tokens
from pluggably.generation.plan import credential_for
from pluggably.generation.schemas import GenerateRequest
from pluggably.lifecycle.scheduler import Scheduler
from pluggably.messages import Features, Message
from pluggably.providers.base import Credential, ProviderCall
from pluggably.providers.directory import ProviderDirectory
from pluggably.registry.service import RegistryService
from pluggably.routing.resolve import LOCAL, Router, Target
from pluggably.runtimes.base import CountsPrompts, CountsTokens, LocalCall, ModelSpec
from pluggably.runtimes.factory import check_available


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    estimated: bool  # no tokenizer of the model's at hand: about right, not exact


@runtime_checkable
class CountsUpstream(Protocol):
    """A provider whose vendor counts a call's input tokens (Anthropic)."""

    async def count_tokens(self, call: ProviderCall, credential: Credential) -> int: ...


class TokenCounting:
    def __init__(
        self,
        db: Database,
        router: Router,
        callers: CallerCache,
        providers: ProviderDirectory,
        registry: RegistryService,
        scheduler: Scheduler,
    ) -> None:
        self.db, self.router, self.callers = db, router, callers
        self.providers, self.registry, self.scheduler = providers, registry, scheduler

    async def count(self, principal: Principal, body: GenerateRequest) -> TokenCount:
        """The input tokens of ``body`` for the model it routes to (its first choice:
        fallbacks are not counted)."""
        messages, features = inputs.conversation(body), inputs.features(body)
        spec: ModelSpec | None = None
        async with self.db.session() as session:
            user, credentials = await self.callers.get(session, principal)
            targets = await self.router.candidates(
                session,
                body,
                preferred_model=user.preferred_model,
                has_credential=credentials.usable,
            )
            target = targets[0]
            if target.provider == LOCAL:
                model = await self.registry.get(session, target.model)
                if model.modality != "text":
                    raise InvalidParameter(
                        f"'{model.id}' is a {model.modality} model: it takes no messages."
                    )
                spec = self.registry.spec_of(model)
        if spec is not None:
            return await self._local(spec, LocalCall(messages, features=features))
        call = ProviderCall(target.model, messages, features=features)
        counted = await self._upstream(target, credentials, call)
        if counted is not None:
            return TokenCount(counted, estimated=False)
        return TokenCount(tally(messages, features, estimate_tokens), estimated=True)

    async def _local(self, spec: ModelSpec, call: LocalCall) -> TokenCount:
        """Counted by the model's runtime. A model that is not loaded is loaded through
        the scheduler (room made as for a request): clients count right before they send
        the message that needs it, and the runtime's own prompt is the only exact count
        (a vocabulary-only load would repeat its template and tool rendering). A runtime
        that cannot count a whole prompt counts its parts with the model's tokenizer:
        close, but the template's markers are estimated."""
        check_available(spec)
        runtime = (await self.scheduler.ensure_loaded(spec)).runtime
        if isinstance(runtime, CountsPrompts):
            exact = await asyncio.to_thread(runtime.prompt_tokens, call)
            if exact is not None:
                return TokenCount(exact, estimated=False)
        counter = runtime.count_tokens if isinstance(runtime, CountsTokens) else None

        def count(text: str) -> int:
            counted = counter(text) if counter is not None else None
            return counted if counted is not None else estimate_tokens(text)

        tokens = await asyncio.to_thread(tally, call.messages, call.features, count)
        return TokenCount(tokens, estimated=True)

    async def _upstream(
        self, target: Target, credentials: CredentialSnapshot, call: ProviderCall
    ) -> int | None:
        provider = self.providers.get(target.provider)
        if not isinstance(provider, CountsUpstream):
            return None
        credential = credential_for(self.providers, credentials, target.provider)
        return await provider.count_tokens(call, credential)


def tally(messages: list[Message], features: Features, count: Callable[[str], int]) -> int:
    """The tokens of each turn (its text, tool calls and reasoning, as the context
    window counts them) and of the tools' definitions, by ``count``."""
    total = sum(cost(m, count) for m in messages)
    if features.tools:
        tools = [t.as_openai() for t in features.tools]
        total += count(orjson.dumps(tools).decode())
    return total
