"""Prices: the table shipped with the package (usage/prices.yaml) for known provider
models, overridden or extended by the operator (setting ``prices``); local models cost
0 unless the operator prices them. Keys are ``provider:model`` patterns
(``openai:gpt-4o-mini*``); the most specific matching key wins."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

# routing.resolve.LOCAL (not imported from there: the settings import this module, and
# routing imports the settings).
LOCAL_PROVIDER = "local"
# Costs are kept to a trillionth of a dollar: the cheapest price per token (about $2e-8)
# keeps its digits, and a sum of many requests does not show float noise.
COST_DIGITS = 12

PriceKey = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[^:]+:.+$")
]


class Price(BaseModel):
    """US dollars per million tokens, and per image generated."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(default=0.0, ge=0, description="$ per 1M prompt tokens.")
    output_per_mtok: float = Field(default=0.0, ge=0, description="$ per 1M completion tokens.")
    per_image: float | None = Field(default=None, ge=0, description="$ per image generated.")


PRICE_LIST = TypeAdapter(dict[PriceKey, Price])


@functools.cache
def shipped_prices() -> Mapping[str, Price]:
    """The package's table, read and checked once per process."""
    text = resources.files(__package__).joinpath("prices.yaml").read_text(encoding="utf-8")
    return PRICE_LIST.validate_python(yaml.safe_load(text))


@dataclass(frozen=True)
class _Entry:
    matches: re.Pattern[str]
    # Exact keys first, then the longest literal prefix, then the most literal
    # characters; on a tie the operator's entry (listed after the shipped ones) wins.
    rank: tuple[bool, int, int, int]
    price: Price


def _entry(key: str, price: Price, order: int) -> _Entry:
    wildcard = re.search(r"[*?\[]", key)
    prefix = wildcard.start() if wildcard else len(key)
    literal = len(re.sub(r"[*?]|\[[^\]]*\]", "", key))
    rank = (wildcard is None, prefix, literal, order)
    return _Entry(re.compile(fnmatch.translate(key)), rank, price)


class PriceTable:
    """What a call cost at the gateway's prices: the shipped table overlaid by the
    operator's entries (the same key replaces the shipped price; new keys add to it)."""

    MAX_CACHED = 2000  # model names come from users: past this, look-ups are not kept

    def __init__(
        self, overrides: Mapping[str, Price] | None = None, *, shipped: bool = True
    ) -> None:
        prices = {
            **(shipped_prices() if shipped else {}),
            **PRICE_LIST.validate_python(overrides or {}),
        }
        entries = [_entry(key, price, n) for n, (key, price) in enumerate(prices.items())]
        self._entries = sorted(entries, key=lambda e: e.rank, reverse=True)
        # Look-ups by "provider:model"; written only from the event loop's thread.
        self._found: dict[str, Price | None] = {}

    def lookup(self, provider: str, model: str) -> Price | None:
        """The price of the most specific key matching ``provider:model``; None when
        no key matches."""
        name = f"{provider}:{model}".lower()
        if name in self._found:
            return self._found[name]
        price = next((e.price for e in self._entries if e.matches.match(name)), None)
        if len(self._found) < self.MAX_CACHED:
            self._found[name] = price
        return price

    def cost(
        self,
        provider: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        images: int = 0,
    ) -> float | None:
        """US dollars; None when the model is not priced (unknown), 0 for an unpriced
        local model."""
        price = self.lookup(provider, model)
        if price is None:
            return 0.0 if provider == LOCAL_PROVIDER else None
        dollars = (
            prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
        ) / 1_000_000
        if images and price.per_image is not None:
            dollars += images * price.per_image
        return round(dollars, COST_DIGITS)
