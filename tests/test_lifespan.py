"""The lifespan's periodic work: each setting turns its pass on, at its interval."""

from __future__ import annotations

from pathlib import Path

from pluggably.app import create_app
from pluggably.lifespan import periodic_work
from tests.conftest import make_settings, running


async def _schedule(tmp_path: Path, database_url: str, **settings: object) -> dict[str, float]:
    app = create_app(make_settings(tmp_path, database_url, **settings))
    async with running(app):
        return {job.name: job.interval_s for job in periodic_work(app.state.container)}


def _cluster(database_url: str) -> dict[str, float]:
    """On PostgreSQL other replicas may run: the heartbeat and the takeover of dead
    replicas' downloads, each a quarter of the 10 s lease."""
    if database_url.startswith("postgresql"):
        return {"cluster_heartbeat": 2.5, "download_takeover": 2.5}
    return {}


async def test_defaults_expire_artifacts_and_unload_idle_models(
    tmp_path: Path, database_url: str
) -> None:
    # keep_alive_s 300 s by default: its pass runs every 5 s (a quarter, at most 5 s);
    # stored responses are kept 30 days, checked hourly; limits' counters swept a minute.
    assert await _schedule(tmp_path, database_url) == {
        "artifact_cleanup": 300,
        "idle_unload": 5.0,
        "response_retention": 3600,
        "limit_sweep": 60.0,
        **_cluster(database_url),
    }


async def test_retention_settings_add_their_passes(tmp_path: Path, database_url: str) -> None:
    schedule = await _schedule(
        tmp_path,
        database_url,
        session_retention_closed_days=30,
        session_cleanup_interval_s=600,
        storage_cleanup_interval_s=120,
        keep_alive_s=None,
        artifact_cleanup_interval_s=60,
        responses_retention_days=None,
    )
    assert schedule == {
        "artifact_cleanup": 60,
        "session_retention": 600,
        "storage_cleanup": 120,
        "limit_sweep": 60.0,  # limits' counters, whatever the settings
        **_cluster(database_url),
    }
