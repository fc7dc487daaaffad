"""GGUF text models through llama-cpp-python. The chat template comes from the GGUF when
it has one; base models without one get a plain transcript that stops at the next
turn. Stop sequences are matched here, not by llama.cpp, so the answer knows which of
the caller's ended it and never shows a turn marker. Token counts are llama.cpp's own:
the prompt as tokenized, the completion as generated (counted by the stopping
criterion, which also checks the cancel event between tokens)."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from typing import Any

from pluggably.errors import BackendUnavailable, FeatureNotSupported, InvalidParameter
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, run_out
from pluggably.runtimes.prompts import TURN_MARKERS, AnswerFilter, template_prompt, transcript
from pluggably.stops import as_list

DEFAULT_CONTEXT = 4096


class LlamaCppRuntime:
    kind = "llama_cpp"

    def __init__(self, spec: ModelSpec, *, n_ctx: int = DEFAULT_CONTEXT) -> None:
        self.spec = spec
        self.n_ctx = n_ctx
        self._llm: Any = None
        self._template: Any = None
        # One generation at a time: a Llama's context (KV cache, batch, sampler) is not
        # safe to share between threads, and PLUGGABLY_LOCAL_PARALLEL may admit several
        # requests to one model; the others wait here, in their worker threads.
        self._generating = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        # The weights are memory-mapped; the KV cache adds n_ctx-sized buffers on top.
        size = self.spec.size_bytes or _file_size(self.spec)
        return size + (self._llm.n_ctx() * 64 * 1024 if self._llm is not None else 0)

    def load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.spec.path.is_file():
            raise BackendUnavailable(f"The file of '{self.spec.model_id}' is missing.")
        try:
            llm = Llama(
                model_path=str(self.spec.path),
                n_ctx=self.n_ctx,
                n_threads=os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailable(
                f"llama.cpp could not load '{self.spec.model_id}' ({type(exc).__name__}): "
                "the GGUF file is damaged or of an unsupported architecture."
            ) from None
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            tokens = llm._model.token_eos(), llm._model.token_bos()
            eos, bos = (llm._model.token_get_text(t) if t >= 0 else "" for t in tokens)
            self._template = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._llm = llm

    def count_tokens(self, text: str) -> int | None:
        """llama.cpp's count for ``text``, or None when not loaded."""
        llm = self._llm
        return None if llm is None else len(llm.tokenize(text.encode(), add_bos=False))

    def unload(self) -> None:
        llm, self._llm, self._template = self._llm, None, None
        if llm is not None:
            llm.close()

    def _prompt(self, call: LocalCall) -> tuple[str, AnswerFilter, list[str]]:
        """The prompt, the filter its answer goes through (the caller's stops, and the
        turn markers of a plain transcript), and the template's own stop strings (end of
        turn), which llama.cpp stops at."""
        if any(m.images for m in call.messages):
            raise FeatureNotSupported(
                f"'{self.spec.model_id}' reads text only; send the request without images."
            )
        stops = as_list(call.parameters.get("stop"))
        if self._template is None:
            return transcript(call.messages), AnswerFilter(stops, TURN_MARKERS), []
        extra: list[str] = []

        def render(turns: list[dict[str, str]]) -> str:
            formatted = self._template(messages=turns)
            stop = formatted.stop
            extra.extend(stop if isinstance(stop, list) else [stop or ""])
            return str(formatted.prompt)

        prompt = template_prompt(render, call.messages)
        return prompt, AnswerFilter(stops), [s for s in extra if s]

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        with self._generating:
            return (yield from self._stream(call, cancel))

    def _stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[str, None, LocalResult]:
        if self._llm is None:
            raise BackendUnavailable(f"'{self.spec.model_id}' is not loaded.")
        llm = self._llm
        prompt, answer, stops = self._prompt(call)
        prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
        room = llm.n_ctx() - prompt_tokens
        if room < 1:
            raise InvalidParameter(
                f"The prompt is {prompt_tokens} tokens; '{self.spec.model_id}' holds "
                f"{llm.n_ctx()} here. Shorten the conversation."
            )
        generated = [0]
        chunks = _completion(llm, prompt, call.parameters, stops, prompt_tokens, cancel, generated)
        parts: list[str] = []
        finish = "stop"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = answer.feed(choice["text"]) if choice["text"] else ""
                if text:
                    parts.append(text)
                    yield text
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if answer.stopped or cancel.is_set():
                    break
        finally:
            chunks.close()
            _free_sampler(llm)
        if not answer.stopped and not cancel.is_set() and (tail := answer.flush()):
            parts.append(tail)
            yield tail
        if answer.stopped:
            finish = "stop"
        if cancel.is_set():
            finish = "cancelled"
        return LocalResult(
            text="".join(parts),
            finish_reason=finish if finish in ("stop", "length", "cancelled") else "stop",
            stop_sequence=answer.stop_sequence,
            prompt_tokens=prompt_tokens,
            completion_tokens=generated[0],
        )

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        return run_out(self.stream(call, cancel))


def _completion(
    llm: Any,
    prompt: str,
    params: dict[str, Any],
    stops: list[str],
    prompt_tokens: int,
    cancel: threading.Event,
    generated: list[int],
) -> Any:
    """Start llama.cpp's streamed completion of ``prompt`` (``prompt_tokens`` long) in
    the context left after it. Setting ``cancel`` stops it at the next token;
    ``generated[0]`` counts the tokens sampled so far, for the result's usage."""
    from llama_cpp import StoppingCriteriaList
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    room = llm.n_ctx() - prompt_tokens

    def check(tokens: Any, _logits: Any) -> bool:
        # Called once per sampled token, before that token joins ``tokens``.
        generated[0] = len(tokens) - prompt_tokens + 1
        return cancel.is_set()

    grammar = None
    if params.get("format") == "json":
        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    return llm.create_completion(
        prompt,
        max_tokens=min(int(params.get("max_tokens", 512)), room),
        temperature=float(params.get("temperature", 0.7)),
        top_p=float(params.get("top_p", 1.0)),
        stop=stops or None,
        seed=params.get("seed"),
        stream=True,
        grammar=grammar,
        stopping_criteria=StoppingCriteriaList([check]),
    )


def _free_sampler(llm: Any) -> None:
    """Free the sampler chain llama-cpp-python built for this generation. It stays on
    ``llm._sampler`` until the next call replaces it, and the replaced one sits in a
    reference cycle (its ExitStack's callback holds it) with native buffers sized to the
    vocabulary, ~3 MB for Gemma's 262k: left to the cycle collector, which the app tunes
    to run rarely, memory grew by that much per generation. Closing it frees the native
    chain now and empties the stack, which breaks the cycle."""
    sampler, llm._sampler = llm._sampler, None
    if sampler is not None:
        sampler.close()


def _file_size(spec: ModelSpec) -> int:
    try:
        return spec.path.stat().st_size
    except OSError:
        return 0
