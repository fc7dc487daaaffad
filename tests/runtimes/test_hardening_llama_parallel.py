"""A llama.cpp model admitted to several requests at once (PLUGGABLY_LOCAL_PARALLEL > 1)
runs them one after another: a Llama's context and sampler are not safe to share
between threads (issue #15 review: one generation freed the sampler another was using)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pluggably.messages import Message
from pluggably.runtimes.base import LocalCall, ModelSpec
from pluggably.runtimes.llama_cpp_rt import LlamaCppRuntime
from tests.fixtures.prompts import GREEDY, LONG_RUNNING


def test_two_generations_on_one_llama_model_do_not_overlap(gemma_gguf: Path) -> None:
    runtime = LlamaCppRuntime(ModelSpec("gemma", gemma_gguf, "gguf", "text"), n_ctx=1024)
    runtime.load()
    spans: dict[str, tuple[float, float]] = {}
    first_token = threading.Event()

    def run(name: str) -> None:
        call = LocalCall(
            messages=[Message(role="user", text=LONG_RUNNING)],
            parameters={**GREEDY, "max_tokens": 40},
        )
        pieces = runtime.stream(call, threading.Event())
        start = end = 0.0
        try:
            while True:
                next(pieces)
                start = start or time.monotonic()
                first_token.set()
                end = time.monotonic()
        except StopIteration:
            spans[name] = (start, end)

    try:
        a = threading.Thread(target=run, args=("a",))
        a.start()
        assert first_token.wait(60)
        b = threading.Thread(target=run, args=("b",))
        b.start()
        a.join(120)
        b.join(120)
    finally:
        runtime.unload()
    assert set(spans) == {"a", "b"}
    assert spans["b"][0] >= spans["a"][1]  # b's first token came after a's last
