"""Two real replicas on one PostgreSQL (API.md §11): whatever one replica knows about
a request, session or login, the other answers for, live; a dead replica's requests
do not stay running."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.harness import ADMIN, Replica, replicas
from tests.conftest import PASSWORD
from tests.fixtures.loopback import serving
from tests.fixtures.openai_sim import OpenAISim

pytestmark = pytest.mark.slow

MODEL = "sim:gpt-4o-mini"
LONG = " ".join(f"w{i}" for i in range(120))  # 120 deltas


@pytest.fixture(scope="module")
def sim() -> Iterator[OpenAISim]:
    with serving(OpenAISim(), "the OpenAI simulator") as started:
        yield started


def endpoint_env(sim: OpenAISim) -> dict[str, str]:
    sims = {"sim": {"base_url": sim.base_url, "api_key": "sk-sim-0001", "models": ["gpt-4o-mini"]}}
    return {"PLUGGABLY_ENDPOINTS": json.dumps(sims)}


@pytest.fixture(scope="module")
def pair(sim: OpenAISim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    with replicas(tmp_path_factory.mktemp("pair"), 2, **endpoint_env(sim)) as started:
        yield started


@pytest.fixture(autouse=True)
def _calm(sim: OpenAISim) -> Iterator[None]:
    sim.reset_faults()
    sim.set_reply("gpt-4o-mini", None)
    yield
    sim.reset_faults()


def person(a: Replica, b: Replica, name: str) -> dict[str, str]:
    """A person invited and registered through A, signed in through B."""
    with a.client() as ca, b.client() as cb:
        invite = ca.post("/v1/users/invites", json={}, headers=ADMIN).json()["token"]
        body = {"username": name, "password": PASSWORD, "invite_token": invite}
        assert ca.post("/v1/users/register", json=body).status_code == 201
        login = cb.post("/v1/users/login", json={"username": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}


class Stream:
    """A streamed /v1/generate read in a thread: its frames as they come."""

    def __init__(self, replica: Replica, headers: dict[str, str], **body: Any) -> None:
        self.frames: list[Any] = []
        self.ended_at: float | None = None
        self.request_id = threading.Event()
        self.id = ""
        body = {"model": MODEL, "stream": True, **body}
        self._thread = threading.Thread(target=self._read, args=(replica, headers, body))
        self._thread.start()

    def _read(self, replica: Replica, headers: dict[str, str], body: dict[str, Any]) -> None:
        with replica.client() as client:
            try:
                with client.stream("POST", "/v1/generate", json=body, headers=headers) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            frame = json.loads(line.removeprefix("data: "))
                            self.frames.append(frame)
                            if frame.get("event") == "model_selected":
                                self.id = frame["request_id"]
                                self.request_id.set()
            except httpx.TransportError:
                pass  # the replica was killed
        self.ended_at = time.monotonic()
        self.request_id.set()

    def text(self) -> str:
        return "".join(
            f["choices"][0]["delta"].get("content", "") for f in self.frames if "choices" in f
        )

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive()


def events(replica: Replica, headers: dict[str, str], request_id: str) -> list[dict[str, Any]]:
    frames = []
    with replica.client() as client:
        path = f"/v1/requests/{request_id}/events"
        with client.stream("GET", path, headers=headers) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    frames.append(json.loads(line.removeprefix("data: ")))
    return frames


def wait_deltas(stream: Stream, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while sum("choices" in f for f in stream.frames) < n:
        assert time.monotonic() < deadline, stream.frames
        time.sleep(0.02)


def test_a_login_works_on_b_and_session_turns_alternate(pair: list[Replica]) -> None:
    a, b = pair
    who = person(a, b, "alternating")
    with a.client(headers=who) as ca, b.client(headers=who) as cb:
        assert ca.get("/v1/users/me").json()["username"] == "alternating"
        session = cb.post("/v1/sessions", json={"title": "two replicas"}).json()["id"]
        for turn, client in enumerate([ca, cb, ca, cb]):
            body = {"model": MODEL, "input": {"prompt": f"turn {turn}"}, "session_id": session}
            answer = client.post("/v1/generate", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"]["text"] == f"Echo: turn {turn}"
        messages = ca.get(f"/v1/sessions/{session}").json()["messages"]
    said = [(m["role"], m["content"]) for m in messages]
    assert said == [
        pair
        for turn in range(4)
        for pair in (("user", f"turn {turn}"), ("assistant", f"Echo: turn {turn}"))
    ]
    # The turns were served by both replicas: each logged its own two.
    for replica in (a, b):
        served = replica.log_events("request")
        assert sum(line["route"] == "/v1/generate" for line in served) == 2


def test_b_relays_the_live_deltas_of_a_request_running_on_a(
    pair: list[Replica], sim: OpenAISim
) -> None:
    a, b = pair
    who = person(a, b, "follower")
    sim.set_reply("gpt-4o-mini", LONG)
    sim.token_delay_s = 0.02  # about 2.5 s for the whole answer
    stream = Stream(a, who, input={"prompt": "go"})
    assert stream.request_id.wait(10)
    assert stream.id
    wait_deltas(stream, 5)
    relayed = events(b, who, stream.id)
    stream.join()
    assert relayed[0] == {"event": "status", "request_id": stream.id, "status": "running"}
    assert relayed[-1] == {"event": "status", "request_id": stream.id, "status": "completed"}
    texts = [f["choices"][0]["delta"]["content"] for f in relayed if "choices" in f]
    assert "".join(texts) == stream.text() == LONG
    # Live: the text so far, then deltas as A produced them (batched, never all at once).
    assert len(texts) > 10
    # Another person cannot follow it through either replica.
    stranger = person(b, a, "stranger")
    with b.client(headers=stranger) as cb:
        assert cb.get(f"/v1/requests/{stream.id}/events").status_code == 404


def test_a_cancel_sent_to_b_stops_the_generation_on_a_within_a_second(
    pair: list[Replica], sim: OpenAISim
) -> None:
    a, b = pair
    who = person(a, b, "canceller")
    sim.set_reply("gpt-4o-mini", LONG)
    sim.token_delay_s = 0.1  # 12 s for the whole answer
    disconnects = sim.disconnects
    stream = Stream(a, who, input={"prompt": "go"})
    assert stream.request_id.wait(10)
    wait_deltas(stream, 3)
    with b.client(headers=who) as cb:
        sent = time.monotonic()
        answer = cb.post(f"/v1/requests/{stream.id}/cancel")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        stream.join()
        assert stream.ended_at is not None
        assert stream.ended_at - sent < 1.0
        assert result["cancelled"] is True
        assert result["status"] == "cancelled"
        assert LONG.startswith(result["partial_output"]["text"])
        assert len(result["partial_output"]["text"]) >= len("w0 w1 w2")
        assert sim.wait_for(lambda s: s.disconnects > disconnects, timeout=2)  # upstream closed
        deadline = time.monotonic() + 2
        while cb.get(f"/v1/requests/{stream.id}/status").json()["status"] != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Cancelling it again, through either replica, changes nothing.
        again = cb.post(f"/v1/requests/{stream.id}/cancel").json()
        assert again["cancelled"] is False
        assert again["status"] == "cancelled"


def test_b_marks_the_running_request_of_a_killed_replica_interrupted_within_the_lease(
    sim: OpenAISim, tmp_path: Path
) -> None:
    lease = 3.0
    env = {**endpoint_env(sim), "PLUGGABLY_CLUSTER_LEASE_S": str(lease)}
    with replicas(tmp_path, 2, **env) as (a, b):
        who = person(a, b, "survivor")
        sim.set_reply("gpt-4o-mini", LONG)
        sim.token_delay_s = 0.2  # 24 s: still running when A dies
        stream = Stream(a, who, input={"prompt": "go"})
        assert stream.request_id.wait(10)
        wait_deltas(stream, 2)
        followed: list[list[dict[str, Any]]] = []
        follower = threading.Thread(target=lambda: followed.append(events(b, who, stream.id)))
        follower.start()
        time.sleep(0.3)
        a.kill()
        killed = time.monotonic()
        with b.client(headers=who) as cb:
            while True:
                status = cb.get(f"/v1/requests/{stream.id}").json()
                if status["status"] != "running":
                    break
                assert time.monotonic() - killed < lease * 2, "never marked"
                time.sleep(0.1)
        noticed = time.monotonic() - killed
        assert status["status"] == "failed"
        assert status["error"]["code"] == "interrupted"
        # Silent for a lease, noticed at B's next heartbeat (a quarter lease later).
        assert lease - 0.5 < noticed < lease * 1.25 + 1.0, noticed
        follower.join(lease * 2)
        assert followed
        assert followed[0][-1]["status"] == "failed"
        assert [line["replica"] for line in b.log_events("replica_dead")] == [a.replica_id()]
