"""A replica's shutdown when PostgreSQL is gone: it cannot leave the cluster (a
survivor sweeps it after the lease), but the rest of its shutdown still runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pluggably.app import create_app
from tests.conftest import make_settings, running
from tests.fixtures.faults import TcpProxy


async def test_shutdown_runs_every_step_when_the_database_is_gone(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a replica of a cluster runs on PostgreSQL")
    url = make_url(database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        app = create_app(make_settings(tmp_path, through))
        async with running(app):  # (its end raised the database's error before)
            container = app.state.container
            assert container.cluster is not None
            upstream = container.http._session()  # the providers' connection pool
            proxy.cut()
    # Leaving the cluster failed (logged); the steps after it ran all the same.
    assert upstream.closed
