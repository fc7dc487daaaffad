"""The limits object (API.md §9) and how the three levels combine.

A limit is set at three levels: the server default (settings; not applied to
admins), the user (admin-set) and the API token (at creation, never wider than its
owner's). The strictest applies: every level is checked. The server default and the
user's own limits count against the user; a token's count against that token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Period = Literal["day", "week", "month"]
DEFAULT_PERIOD: Period = "month"
MAX_PATTERNS = 100


class Limits(BaseModel):
    """What one level allows. A field left out (or null) sets no limit at this level."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="Tokens (prompt + completion) per minute. A call is admitted on an "
        "estimate (its prompt and max_tokens) and settled on its real usage.",
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        description="Requests in flight at once (a request queued for a local model holds "
        "its slot while it waits).",
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="Spend allowed per budget_period, in US dollars."
    )
    budget_period: Period | None = Field(
        default=None, description="day, week (from Monday) or month, in UTC; default month."
    )
    models: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description="Allowed models, as patterns of 'provider:model' "
        "(e.g. 'local:*', 'openai:gpt-4o*'); unset allows every model.",
    )

    @field_validator("models")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for pattern in value:
            pattern = pattern.strip()
            if not pattern or len(pattern) > 300:
                raise ValueError("each model pattern must have 1 to 300 characters")
            cleaned.append(pattern)
        return cleaned

    @property
    def period(self) -> Period:
        return self.budget_period or DEFAULT_PERIOD

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


NO_LIMITS = Limits()


def allows_model(patterns: list[str] | None, label: str) -> bool:
    """``label`` is ``provider:model``; a pattern without ':' names the model alone."""
    if patterns is None:
        return True
    model = label.split(":", 1)[1] if ":" in label else label
    return any(fnmatchcase(label, p) if ":" in p else fnmatchcase(model, p) for p in patterns)


def wider_fields(token: Limits, owner: Limits) -> list[str]:
    """The fields in which ``token`` would allow more than ``owner`` (empty: narrower or
    equal). A token cannot drop a limit its owner has, raise a number, or allow a model
    pattern no owner pattern covers."""
    wider = []
    for name in ("rpm", "tpm", "max_concurrent", "budget_usd"):
        mine, theirs = getattr(token, name), getattr(owner, name)
        if theirs is not None and (mine is None or mine > theirs):
            wider.append(name)
    if owner.budget_usd is not None and token.budget_usd is not None:
        # A budget per shorter period is not narrower than one per longer period.
        order = {"day": 0, "week": 1, "month": 2}
        if order[token.period] > order[owner.period]:
            wider.append("budget_period")
    if owner.models is not None and (
        token.models is None or not all(allows_model(owner.models, p) for p in token.models)
    ):
        wider.append("models")
    return wider


def strictest(*levels: Limits | None) -> Limits:
    """One Limits describing what every level together allows: the smallest number of
    each field, the tightest budget, and the allow-lists' common part (a pattern of any
    list that every list allows: "openai:gpt-4o*" under "openai:*"). Describes an
    owner's effective limits, which a token may not exceed."""
    out: dict[str, object] = {}
    present = [level for level in levels if level is not None]
    for name in ("rpm", "tpm", "max_concurrent"):
        values = [getattr(level, name) for level in present if getattr(level, name) is not None]
        if values:
            out[name] = min(values)
    budgets = [level for level in present if level.budget_usd is not None]
    if budgets:
        tightest = min(budgets, key=lambda level: (level.budget_usd, level.period))
        out["budget_usd"], out["budget_period"] = tightest.budget_usd, tightest.period
    lists = [level.models for level in present if level.models is not None]
    if lists:
        common = [p for mine in lists for p in mine if all(allows_model(o, p) for o in lists)]
        out["models"] = list(dict.fromkeys(common))
    return Limits.model_validate(out)


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: Period


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """What is checked against one counter scope (``user:<id>`` or ``token:<id>``)."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budgets: tuple[Budget, ...] = ()

    def is_empty(self) -> bool:
        return not (self.rpm or self.tpm or self.max_concurrent or self.budgets)


def scope_limits(scope: str, *levels: Limits | None) -> ScopeLimits:
    """The levels that count against one scope, combined: the smallest rate of each kind;
    every budget (each with its own period) is checked."""
    present = [level for level in levels if level is not None]

    def least(name: str) -> int | None:
        values = [getattr(level, name) for level in present if getattr(level, name) is not None]
        return min(values) if values else None

    budgets = tuple(
        sorted(
            {
                Budget(float(level.budget_usd), level.period)
                for level in present
                if level.budget_usd is not None
            },
            key=lambda b: (b.period, b.usd),
        )
    )
    return ScopeLimits(scope, least("rpm"), least("tpm"), least("max_concurrent"), budgets)


def period_start(period: Period, now: datetime) -> datetime:
    """The start (UTC) of the budget period holding ``now``."""
    return _period_start(period, now.astimezone(UTC).date())


@lru_cache(maxsize=64)
def _period_start(period: Period, day: date) -> datetime:
    """Every admission with a budget asks this a few times: once per period and day."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if period == "day":
        return midnight
    if period == "week":
        return midnight - timedelta(days=midnight.weekday())
    return midnight.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)
