"""``client.usage(...)`` and ``client.usage_csv(...)``: the typed usage report and its
CSV, against the app in process (the OpenAI simulator answers the requests counted)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pluggably.client import ForbiddenError, ValidationError
from pluggably.usage.schemas import UsageCounts, UsageReport
from tests.client.test_client import MODEL, client_of
from tests.conftest import client_for, new_user
from tests.fixtures.openai_sim import OpenAISim
from tests.generation.test_generate import gen_app


async def test_usage_is_the_typed_report_and_usage_csv_the_same_as_text(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    async with client_of(gen_app(tmp_path, database_url, openai_sim)) as admin:
        answer = await admin.generate("hello there", model=MODEL)
        today = datetime.now(UTC).date()
        report = await admin.usage(from_=today, to=today, group_by="model")
        assert isinstance(report, UsageReport)
        assert (report.from_, report.to) == (
            datetime(today.year, today.month, today.day, tzinfo=UTC),
            datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1),
        )
        assert [(row.key, row.requests, row.errors) for row in report.rows] == [(MODEL, 1, 0)]
        assert answer.usage is not None
        assert report.totals == UsageCounts(
            requests=1,
            errors=0,
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            cost_usd=answer.usage.cost_usd or 0.0,
        )
        # A datetime goes with its offset; a string as it is.
        since = datetime.now(UTC) - timedelta(hours=1)
        everyone = await admin.usage(from_=since, user_id="*", group_by="user")
        assert everyone.user_id == "*"
        assert everyone.totals == report.totals
        assert (await admin.usage(from_=today.isoformat())).totals == report.totals

        text = await admin.usage_csv(from_=today, group_by="model")
        lines = list(csv.reader(io.StringIO(text)))
        assert lines[0] == [
            "key",
            "name",
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
        ]
        assert [line[:3] for line in lines[1:]] == [[MODEL, "", "1"], ["total", "", "1"]]


async def test_usage_errors_are_the_clients_typed_errors(
    tmp_path: Path, database_url: str, openai_sim: OpenAISim
) -> None:
    app = gen_app(tmp_path, database_url, openai_sim)
    async with client_of(app) as admin, client_for(app) as raw:
        login = await new_user(raw, "carol")
        carol = admin.with_auth(token=login["Authorization"].removeprefix("Bearer "))
        mine = await carol.usage()
        assert (mine.rows, mine.totals.requests) == ([], 0)
        with pytest.raises(ForbiddenError) as denied:
            await carol.usage(user_id="*")
        assert (denied.value.status, denied.value.code) == (403, "forbidden")
        with pytest.raises(ForbiddenError):
            await carol.usage_csv(user_id="*")
        with pytest.raises(ValidationError) as backwards:
            await carol.usage(from_=date(2025, 2, 1), to=date(2025, 1, 1))
        assert backwards.value.code == "validation_error"
