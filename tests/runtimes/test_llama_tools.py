"""The llama.cpp runtime's own refusals of ``tool_choice: auto`` (the request path
skips such models first; a row registered before its template was read reaches here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pluggably.errors import FeatureNotSupported
from pluggably.messages import Features, Message, ResponseFormat, Tool
from pluggably.runtimes.base import LocalCall, ModelSpec
from pluggably.runtimes.llama_cpp_rt import LlamaCppRuntime
from tests.fixtures.gguf_template import with_chat_template
from tests.runtimes.test_tool_prompts import QWEN

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the 'local' extra)")
pytestmark = pytest.mark.slow
ASK = [Message("user", "Weather in Paris?")]
AUTO = Features(tools=(Tool("get_weather", None, {"type": "object"}),))


def loaded(path: Path, model_id: str) -> Iterator[LlamaCppRuntime]:
    runtime = LlamaCppRuntime(ModelSpec(model_id, path, "gguf", "text"), n_ctx=512)
    runtime.load()
    yield runtime
    runtime.unload()


@pytest.fixture
def gemma(gemma_gguf: Path) -> Iterator[LlamaCppRuntime]:
    yield from loaded(gemma_gguf, "local/gemma")


@pytest.fixture
def qwenish(tmp_path: Path, gemma_gguf: Path) -> Iterator[LlamaCppRuntime]:
    yield from loaded(with_chat_template(gemma_gguf, tmp_path / "q.gguf", QWEN), "local/q")


def test_auto_tools_on_a_model_without_a_tool_template_name_the_model(
    gemma: LlamaCppRuntime,
) -> None:
    with pytest.raises(
        FeatureNotSupported, match=r"^'local/gemma' has no chat template that takes"
    ):
        gemma.generate(LocalCall(ASK, {"max_tokens": 4}, features=AUTO), threading.Event())


def test_auto_tools_cannot_also_be_held_to_json(qwenish: LlamaCppRuntime) -> None:
    features = Features(tools=AUTO.tools, response_format=ResponseFormat("json_object"))
    with pytest.raises(FeatureNotSupported, match="cannot both choose whether to call a tool"):
        qwenish.generate(LocalCall(ASK, {"max_tokens": 4}, features=features), threading.Event())
