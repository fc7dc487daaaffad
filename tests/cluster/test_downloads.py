"""Download jobs across two real replicas (API.md §11): a download runs on the replica
that took it, is followed and cancelled through the other, and when its replica is
killed the other takes it over from the partial files they share."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.harness import ADMIN, Replica, replicas
from tests.downloads.test_downloads import MB, gguf_bytes
from tests.fixtures.hf_hub import FakeHub

pytestmark = pytest.mark.slow

REPO, FILE = "acme/slow-GGUF", "slow-Q4_K_M.gguf"
BODY = {"source": {"type": "huggingface", "id": REPO}}
LEASE_S = 3.0


def seed(hub: FakeHub) -> bytes:
    data = gguf_bytes(6 * MB, 3)
    hub.add_model(REPO, {FILE: data}, tags=("gguf",), library_name="gguf")
    hub.throttle_bps = 512 * 1024  # twelve seconds for the whole file
    return data


def start(tmp_path: Path, hub: FakeHub) -> Any:
    return replicas(
        tmp_path, 2, PLUGGABLY_HF_ENDPOINT=hub.url, PLUGGABLY_CLUSTER_LEASE_S=str(int(LEASE_S))
    )


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for(client: httpx.Client, job_id: str, timeout: float, **want: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(client, job_id)
        if all(job[k] == v for k, v in want.items()):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def events(log: str, name: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return [e for e in lines if e.get("event") == name]


def download(replica: Replica) -> str:
    with replica.client(headers=ADMIN) as client:
        response = client.post("/v1/models/download", json=BODY)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_a_download_on_one_replica_is_followed_and_cancelled_through_another(
    tmp_path: Path, hf_hub: FakeHub
) -> None:
    seed(hf_hub)
    with start(tmp_path, hf_hub) as (a, b), b.client(headers=ADMIN) as through_b:
        job_id = download(a)
        seen: list[int] = []
        with through_b.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    frame = json.loads(line.removeprefix("data: "))
                    assert frame["status"] in ("queued", "running"), frame
                    seen.append(frame["bytes_done"])
                    if len([n for n in seen if n > 0]) == 3:
                        break
        assert seen == sorted(seen)
        assert 0 < seen[-1] < 6 * MB
        asked = time.monotonic()
        cancelled = through_b.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert time.monotonic() - asked < 2.5
        hf_hub.wait_idle(1.0)  # A's transfer stopped
        sent = hf_hub.bytes_sent[(REPO, FILE)]
        time.sleep(0.5)
        assert hf_hub.bytes_sent[(REPO, FILE)] == sent < 6 * MB
        with a.client(headers=ADMIN) as through_a:
            assert get_job(through_a, job_id)["status"] == "cancelled"
        finished = events(a.log(), "download_finished")
        assert [(e["job_id"], e["status"]) for e in finished] == [(job_id, "cancelled")]
        assert not events(b.log(), "download_finished")  # B never ran it


def test_a_killed_replicas_download_is_taken_over_and_completes(
    tmp_path: Path, hf_hub: FakeHub
) -> None:
    data = seed(hf_hub)
    with start(tmp_path, hf_hub) as (a, b), b.client(headers=ADMIN) as through_b:
        job_id = download(a)
        deadline = time.monotonic() + 20
        while hf_hub.bytes_sent[(REPO, FILE)] < MB:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        a.kill()
        killed = time.monotonic()
        hf_hub.throttle_bps = None
        assert get_job(through_b, job_id)["status"] == "running"  # A's, until its lease ends
        done = wait_for(through_b, job_id, 30, status="completed")
        taken = events(b.log(), "downloads_taken_over")
        assert [e["jobs"] for e in taken] == [[job_id]]
        # Taken over once the lease ran out, plus a take-over pass.
        assert time.monotonic() - killed < LEASE_S + 4
        assert done["bytes_done"] == 6 * MB
        model = through_b.get(f"/v1/models/{REPO}").json()
        assert Path(model["local_path"]).read_bytes() == data
    ranges = [
        r.headers.get("range", "")
        for r in hf_hub.requests
        if r.method == "GET" and "cdn-lfs" in r.path and FILE in r.path
    ]
    assert len(ranges) == 2
    assert ranges[1].startswith("bytes=")  # resumed from A's part file
