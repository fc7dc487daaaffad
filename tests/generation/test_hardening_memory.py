"""Local generations give back what they allocate when they end, not when the cycle
collector next runs (the app freezes startup objects and raises the collector's
thresholds, so that may be long after). Each test counts, with the collector off, the
native or array-holding objects still alive after several generations over HTTP: before
the fix every llama.cpp generation left its sampler chain (~3 MB for Gemma's 262k
vocabulary) and every Shap-E one its mesh arrays."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pluggably.app import create_app
from tests.conftest import ADMIN_KEY, client_for, generate, make_settings, running, sse_frames
from tests.fixtures.prompts import GREEDY, LONG_RUNNING

pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Cycles found by the collector would hide a leak: nothing is freed but by refcount."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type, holds: Any) -> int:
    """Live objects of ``kind`` that still hold what ``holds`` reads from them. (By exact
    type: isinstance would read ``__class__`` of torch's deprecated module proxies.)"""
    return sum(1 for o in gc.get_objects() if type(o) is kind and holds(o))


async def test_llama_cpp_generations_free_their_sampler(
    tmp_path: Path, database_url: str, gemma_gguf: Path, collector_off: None
) -> None:
    from llama_cpp._internals import LlamaSampler

    from tests.generation.test_local_generation import _running_request, wait_for

    def chains() -> int:
        return alive(LlamaSampler, lambda s: s.sampler is not None)

    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    os.link(gemma_gguf, models / "gemma.gguf")
    app = create_app(make_settings(tmp_path, database_url))
    before = chains()
    async with running(app), client_for(app, timeout=60) as client:
        short = {"model": "local/gemma", "input": {"prompt": "Once upon a time"}}
        for json_format in (False, True, False, True):
            params = {"max_tokens": 6, **GREEDY, **({"format": "json"} if json_format else {})}
            answer = await generate(client, ADMIN, **short, parameters=params)
            assert answer.status_code == 200, answer.text
            assert await sse_frames(client, ADMIN, **short, parameters=params)
        # A cancelled generation ends through the same path.
        long = {"model": "local/gemma", "input": {"prompt": LONG_RUNNING}}
        held = asyncio.ensure_future(
            generate(client, ADMIN, **long, parameters={"max_tokens": 2000, **GREEDY}, wait=True)
        )

        async def busy() -> bool:
            status = await client.get("/v1/models/local/gemma/status", headers=ADMIN)
            return bool(status.json()["runtime_status"] == "busy")

        await wait_for(busy, 30)
        running_id = await _running_request(client)
        await client.post(f"/v1/requests/{running_id}/cancel", headers=ADMIN)
        assert (await held).json()["finish_reason"] == "cancelled"

        assert chains() == before


@pytest.fixture(scope="module")
def sculptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    pytest.importorskip("trimesh")
    from tests.fixtures.tiny_models import build_tiny_shap_e

    return build_tiny_shap_e(tmp_path_factory.mktemp("memory") / "sculptor")


@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
async def test_shap_e_generations_free_their_mesh(
    tmp_path: Path,
    database_url: str,
    sculptor: Path,
    monkeypatch: pytest.MonkeyPatch,
    collector_off: None,
) -> None:
    import torch
    from trimesh.caching import DataStore

    from pluggably.runtimes import shap_e_rt

    monkeypatch.setattr(shap_e_rt, "GRID_SIZE", 8)
    monkeypatch.setattr(shap_e_rt, "PREVIEW_SIZE", 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine: OpenMP workers only wait on each other
    shutil.copytree(sculptor, tmp_path / "data" / "models" / "sculptor")
    app = create_app(make_settings(tmp_path, database_url))
    try:
        before = alive(DataStore, lambda d: bool(d.data))
        async with running(app), client_for(app, timeout=60) as client:
            for fmt in ("glb", "obj", "ply"):
                params = {"num_inference_steps": 1, "output_format": fmt, "seed": 0}
                body = {"model": "local/sculptor", "input": {"prompt": "a chair"}}
                answer = await generate(client, ADMIN, **body, parameters=params)
                assert answer.status_code == 200, answer.text
            assert alive(DataStore, lambda d: bool(d.data)) == before
    finally:
        torch.set_num_threads(threads)
