"""The price table: the shipped YAML loads and names the gateway's providers; a look-up
finds the most specific key (an exact name, then the longest text before a wildcard, the
operator's entry on a tie); operator entries replace or extend the shipped ones; costs
are rounded dollars, 0 for an unpriced local model and None for an unpriced one; a bad
operator entry is refused when the settings load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pluggably.providers.directory import NATIVE_DEFAULTS, VENDORS
from pluggably.usage.prices import Price, PriceTable, shipped_prices
from tests.conftest import make_settings


def test_the_shipped_table_prices_models_of_the_gateways_own_providers() -> None:
    providers = {key.split(":", 1)[0] for key in shipped_prices()}
    assert providers == {"openai", "azure", "anthropic", "google", "xai", "deepseek", "groq"}
    assert providers <= set(VENDORS) | set(NATIVE_DEFAULTS)
    defaults = [("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku-latest")]
    defaults += [("google", "gemini-2.0-flash"), ("xai", "grok-3-mini")]
    defaults += [("deepseek", "deepseek-chat"), ("groq", "llama-3.1-8b-instant")]
    defaults += [("openai", "text-embedding-3-small"), ("google", "gemini-embedding-001")]
    table = PriceTable()
    assert [p for p, m in defaults if table.lookup(p, m) is None] == []


def test_azure_shares_openais_prices() -> None:
    table = PriceTable()
    for model in ("gpt-4o", "gpt-4.1-mini", "o3-mini", "text-embedding-3-large", "dall-e-3"):
        assert table.lookup("azure", model) == table.lookup("openai", model)


def test_dated_snapshots_match_their_models_pattern() -> None:
    table = PriceTable()
    assert table.lookup("openai", "gpt-4o-mini-2024-07-18") == Price(
        input_per_mtok=0.15, output_per_mtok=0.60
    )
    assert table.lookup("anthropic", "claude-sonnet-4-5-20250929") == Price(
        input_per_mtok=3, output_per_mtok=15
    )


def test_an_exact_name_beats_a_pattern() -> None:
    table = PriceTable()
    assert table.lookup("openai", "gpt-4o-2024-05-13") == Price(
        input_per_mtok=5, output_per_mtok=15
    )
    assert table.lookup("openai", "gpt-4o-2024-08-06") == Price(
        input_per_mtok=2.5, output_per_mtok=10
    )


def test_the_longest_literal_prefix_wins_among_patterns() -> None:
    table = PriceTable(
        {
            "openai:*": Price(input_per_mtok=9),
            "openai:gpt-*": Price(input_per_mtok=8),
            "openai:gpt-4*-mini": Price(input_per_mtok=7),
            "openai:gpt-4.1*": Price(input_per_mtok=6),
        },
        shipped=False,
    )
    assert table.lookup("openai", "gpt-4.1-mini") == Price(input_per_mtok=6)
    assert table.lookup("openai", "gpt-4o-mini") == Price(input_per_mtok=7)
    assert table.lookup("openai", "gpt-3.5-turbo") == Price(input_per_mtok=8)
    assert table.lookup("openai", "o3") == Price(input_per_mtok=9)
    assert table.lookup("azure", "o3") is None


def test_names_match_whatever_their_case() -> None:
    table = PriceTable({"Groq:Meta-Llama/*": Price(input_per_mtok=1)}, shipped=False)
    assert table.lookup("groq", "meta-llama/LLAMA-4") == Price(input_per_mtok=1)


def test_the_operators_entry_replaces_the_shipped_one_of_the_same_key() -> None:
    table = PriceTable({"openai:gpt-4o-mini*": Price(input_per_mtok=1, output_per_mtok=2)})
    assert table.lookup("openai", "gpt-4o-mini") == Price(input_per_mtok=1, output_per_mtok=2)
    assert table.lookup("openai", "gpt-4o") == Price(input_per_mtok=2.5, output_per_mtok=10)


def test_a_broad_operator_pattern_prices_only_what_nothing_more_specific_prices() -> None:
    table = PriceTable({"openai:*": Price(input_per_mtok=1)})
    assert table.lookup("openai", "my-fine-tune") == Price(input_per_mtok=1)
    assert table.lookup("openai", "gpt-4o-mini") == Price(input_per_mtok=0.15, output_per_mtok=0.60)


def test_an_operator_pattern_as_specific_as_a_shipped_one_wins() -> None:
    table = PriceTable({"openai:gpt-4o?*": Price(input_per_mtok=1)})
    assert table.lookup("openai", "gpt-4o-2024-08-06") == Price(input_per_mtok=1)


def test_cost_is_tokens_and_images_at_the_price_in_rounded_dollars() -> None:
    table = PriceTable(
        {
            "openai:chat": Price(input_per_mtok=0.15, output_per_mtok=0.60),
            "openai:painter": Price(input_per_mtok=5, per_image=0.04),
        },
        shipped=False,
    )
    assert table.cost("openai", "chat", 1000, 500) == 0.00045
    assert table.cost("openai", "chat", 1, 0) == 1.5e-07
    assert table.cost("openai", "painter", 10, 0, images=3) == 0.12005
    assert table.cost("openai", "chat", 0, 0, images=2) == 0.0  # no per-image price


def test_an_unpriced_model_has_an_unknown_cost_but_a_local_one_costs_nothing() -> None:
    table = PriceTable()
    assert table.cost("openai", "my-fine-tune", 10, 10) is None
    assert table.cost("local", "local/gemma", 10, 10) == 0.0
    priced = PriceTable({"local:*": Price(input_per_mtok=1, output_per_mtok=1)})
    assert priced.cost("local", "local/gemma", 10, 10) == 2e-05


@pytest.mark.parametrize(
    "entry",
    [
        {"input_per_mtok": -1},
        {"input_per_mtok": "cheap"},
        {"input_per_mtok": 1, "per_token": 2},
    ],
    ids=["negative", "not-a-number", "unknown-field"],
)
def test_a_bad_operator_price_is_a_settings_error(tmp_path: Path, entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(tmp_path, "sqlite+aiosqlite://", prices={"openai:x": entry})
    assert raised.value.errors()[0]["loc"][:2] == ("prices", "openai:x")


def test_a_key_without_a_provider_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        PriceTable({"gpt-4o": Price(input_per_mtok=1)})
    assert raised.value.errors()[0]["loc"] == ("gpt-4o", "[key]")


def test_the_operator_prices_models_in_the_environment_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGGABLY_PRICES", '{"vllm:*": {"input_per_mtok": 0.5}}')
    settings = make_settings(tmp_path, "sqlite+aiosqlite://")
    assert PriceTable(settings.prices).cost("vllm", "qwen3-8b", 2_000_000, 7) == 1.0
