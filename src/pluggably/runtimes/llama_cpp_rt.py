"""GGUF text models through llama-cpp-python. The chat template comes from the GGUF when
it has one; base models without one get a plain transcript that stops at the next
turn. JSON output and forced tool calls are held to a grammar compiled from their JSON
Schema (tool_grammar); ``tool_choice: auto`` needs a template that takes tools, and the
calls are read from the model's text (tool_parsing). Stop sequences are matched here,
not by llama.cpp, so the answer knows which of the caller's ended it and never shows a
turn marker. Token counts are llama.cpp's own: the prompt as tokenized, the completion
as generated (counted by the stopping criterion, which also checks the cancel event
between tokens)."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from typing import Any

from jinja2 import TemplateError

from pluggably.errors import BackendUnavailable, FeatureNotSupported, InvalidParameter
from pluggably.messages import Features, ToolCall
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, Piece, run_out
from pluggably.runtimes.prompts import (
    TURN_MARKERS,
    AnswerFilter,
    takes_tools,
    template_prompt,
    tool_instruction,
    transcript,
    with_system,
)
from pluggably.runtimes.tool_grammar import Constraint, constraint_for
from pluggably.runtimes.tool_output import Answer, AutoCalls, ForcedCall, TextAnswer
from pluggably.stops import as_list

DEFAULT_CONTEXT = 4096


class LlamaCppRuntime:
    kind = "llama_cpp"

    def __init__(self, spec: ModelSpec, *, n_ctx: int = DEFAULT_CONTEXT) -> None:
        self.spec = spec
        self.n_ctx = n_ctx
        self._llm: Any = None
        self._template: Any = None
        self._takes_tools = False  # the chat template renders the tools it is given
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
            self._takes_tools = takes_tools(template)
        self._llm = llm

    def count_tokens(self, text: str) -> int | None:
        """llama.cpp's count for ``text``, or None when not loaded."""
        llm = self._llm
        return None if llm is None else len(llm.tokenize(text.encode(), add_bos=False))

    def prompt_tokens(self, call: LocalCall) -> int | None:
        """The whole prompt a generation of ``call`` would feed the model (template,
        tools and all), counted as generation counts it; None when not loaded. It only
        reads the vocabulary, so it needs no turn at the generation lock."""
        llm = self._llm
        if llm is None:
            return None
        prompt, _ = self._prompt(call, constraint_for(call.features))
        return len(llm.tokenize(prompt.encode(), add_bos=True, special=True))

    def unload(self) -> None:
        llm, self._llm, self._template = self._llm, None, None
        self._takes_tools = False
        if llm is not None:
            llm.close()

    def _prompt(self, call: LocalCall, constraint: Constraint | None) -> tuple[str, list[str]]:
        """The prompt, and the template's own stop strings (end of turn), which
        llama.cpp stops at. Tools the model may call are rendered by a template that
        takes them; for a forced call on any other model they are described in a
        system turn (the grammar guarantees the call's shape, this gives it a purpose)."""
        if any(m.images for m in call.messages):
            raise FeatureNotSupported(
                f"'{self.spec.model_id}' reads text only; send the request without images."
            )
        features = call.features
        tools = features.tools if features.uses_tools else ()
        messages = call.messages
        if tools and not self._takes_tools:
            name = constraint.tool.name if constraint and constraint.tool else None
            messages = with_system(messages, tool_instruction(tools, name))
        if self._template is None:
            return transcript(messages), []
        offered = [t.as_openai() for t in tools] if self._takes_tools and tools else None
        extra: list[str] = []

        def render(turns: list[dict[str, Any]]) -> str:
            formatted = self._template(messages=turns, tools=offered)
            stop = formatted.stop
            extra.extend(stop if isinstance(stop, list) else [stop or ""])
            return str(formatted.prompt)

        try:
            prompt = template_prompt(render, messages)
        except (TemplateError, ValueError, TypeError) as exc:  # the template's own reason
            raise InvalidParameter(
                f"'{self.spec.model_id}' cannot take this conversation: {exc}"
            ) from None
        return prompt, [s for s in extra if s]

    def _answer(self, call: LocalCall, constraint: Constraint | None) -> Answer:
        """How the generated text becomes the answer's pieces. A grammar decides where
        a constrained answer ends: no stop sequence may cut its JSON short."""
        features = call.features
        auto = features.uses_tools and not features.tool_choice.forced
        if auto:
            self._check_auto(features)
        if constraint is not None:
            if constraint.kind == "json":
                return TextAnswer(AnswerFilter([]))
            return ForcedCall(constraint.tool.name if constraint.tool else None)
        stops = as_list(call.parameters.get("stop"))
        answer = AnswerFilter(stops, TURN_MARKERS if self._template is None else None)
        if auto:
            single = features.parallel_tool_calls is False
            return AutoCalls(answer, {t.name for t in features.tools}, single=single)
        return TextAnswer(answer)

    def _check_auto(self, features: Features) -> None:
        """``tool_choice: auto`` needs a template that takes tools (a model registered
        before its capability was recorded reaches here), and cannot also be held to
        JSON: the model must be free to write either."""
        if not self._takes_tools:
            raise FeatureNotSupported(
                f"'{self.spec.model_id}' has no chat template that takes tools, so it cannot "
                "choose whether to call one (tool_choice 'auto'); ask for 'required' or name "
                "the function (grammar-constrained)."
            )
        if features.json_output:
            raise FeatureNotSupported(
                f"'{self.spec.model_id}' cannot both choose whether to call a tool and be "
                "held to JSON; ask for tool_choice 'required' or leave out response_format."
            )

    def stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[Piece, None, LocalResult]:
        with self._generating:
            return (yield from self._stream(call, cancel))

    def _stream(
        self, call: LocalCall, cancel: threading.Event
    ) -> Generator[Piece, None, LocalResult]:
        if self._llm is None:
            raise BackendUnavailable(f"'{self.spec.model_id}' is not loaded.")
        llm = self._llm
        constraint = constraint_for(call.features)
        answer = self._answer(call, constraint)
        prompt, stops = self._prompt(call, constraint)
        prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
        room = llm.n_ctx() - prompt_tokens
        if room < 1:
            raise InvalidParameter(
                f"The prompt is {prompt_tokens} tokens; '{self.spec.model_id}' holds "
                f"{llm.n_ctx()} here. Shorten the conversation."
            )
        generated = [0]
        grammar = constraint.gbnf if constraint else None
        chunks = _completion(
            llm, prompt, call.parameters, stops, grammar, prompt_tokens, cancel, generated
        )
        finish = "stop"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["text"]:
                    yield from answer.feed(choice["text"])
                finish = choice.get("finish_reason") or finish
                if answer.stopped or cancel.is_set():
                    break
        finally:
            chunks.close()
            _free_sampler(llm)
        if not cancel.is_set():
            yield from answer.end()
        text, calls = answer.result()
        return LocalResult(
            text=text,
            finish_reason=_finish(finish, answer, calls, cancel),
            stop_sequence=answer.stop_sequence,
            prompt_tokens=prompt_tokens,
            completion_tokens=generated[0],
            tool_calls=calls,
        )

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        return run_out(self.stream(call, cancel))


def _finish(reason: str, answer: Answer, calls: list[ToolCall], cancel: threading.Event) -> str:
    """The result's finish reason: a stop sequence or turn marker is a stop, a whole
    answer that called tools is ``tool_calls``."""
    if cancel.is_set():
        return "cancelled"
    if answer.stopped or reason not in ("stop", "length"):
        reason = "stop"
    return "tool_calls" if calls and reason == "stop" else reason


def _completion(
    llm: Any,
    prompt: str,
    params: dict[str, Any],
    stops: list[str],
    gbnf: str | None,
    prompt_tokens: int,
    cancel: threading.Event,
    generated: list[int],
) -> Any:
    """Start llama.cpp's streamed completion of ``prompt`` (``prompt_tokens`` long) in
    the context left after it, held to the grammar ``gbnf`` if given. Setting ``cancel``
    stops it at the next token; ``generated[0]`` counts the tokens sampled so far."""
    from llama_cpp import StoppingCriteriaList
    from llama_cpp.llama_grammar import LlamaGrammar

    room = llm.n_ctx() - prompt_tokens

    def check(tokens: Any, _logits: Any) -> bool:
        # Called once per sampled token, before that token joins ``tokens``.
        generated[0] = len(tokens) - prompt_tokens + 1
        return cancel.is_set()

    grammar = LlamaGrammar.from_string(gbnf, verbose=False) if gbnf else None
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
