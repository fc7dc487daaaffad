"""Causal language models through Hugging Face transformers (a model folder with
``config.json``, weights and a tokenizer). ``model.generate`` runs in a helper thread and
hands each new token to the calling thread through a queue; the caller turns tokens into
text, applies stop sequences and yields the pieces."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from pluggably.errors import FeatureNotSupported, InvalidParameter
from pluggably.messages import Features, Message
from pluggably.runtimes import prompts
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, RuntimeFactory, run_out
from pluggably.runtimes.prompts import AnswerFilter
from pluggably.runtimes.torch_common import not_loaded
from pluggably.runtimes.torch_runtime import TorchRuntime
from pluggably.stops import as_list

DEFAULT_MAX_TOKENS = 512
_DECODE_CONTEXT = 5  # prompt tokens decoded with the first answer token, for its spacing


def _check_features(spec: ModelSpec, features: Features) -> None:
    """No constrained decoding here: a call that needs tools or JSON output is refused
    (generation/capable.py skips such candidates before they are called)."""
    if features.uses_tools:
        raise FeatureNotSupported(
            f"Model '{spec.model_id}' cannot call tools here; send no tools, or use a GGUF model."
        )
    if features.json_output:
        raise FeatureNotSupported(
            f"Model '{spec.model_id}' cannot be held to JSON answers here; "
            "leave out response_format (and format), or use a GGUF model."
        )


def check_text_only(spec: ModelSpec, messages: list[Message]) -> None:
    if any(m.images for m in messages):
        raise FeatureNotSupported(f"Model '{spec.model_id}' reads text only; send no images.")


class TransformersRuntime(TorchRuntime):
    kind = "transformers"
    marker = "config.json"
    library = "transformers"
    gpu_dtype = "auto"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _read(self, device: torch.device, dtype: Any) -> Any:
        tokenizer = AutoTokenizer.from_pretrained(self.spec.path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(
            self.spec.path, local_files_only=True, dtype=dtype
        )
        model.to(device)
        model.eval()
        return model, tokenizer

    def _keep(self, weights: Any) -> Iterable[Any]:
        self._model, self._tokenizer = weights
        return [self._model]

    def _drop(self) -> None:
        self._model = self._tokenizer = None

    def count_tokens(self, text: str) -> int | None:
        """The tokenizer's count, or None when not loaded."""
        tokenizer = self._tokenizer
        return None if tokenizer is None else len(tokenizer.encode(text, add_special_tokens=False))

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        return run_out(self.stream(call, cancel))

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        if self._model is None:
            raise not_loaded(self.spec)
        check_text_only(self.spec, call.messages)
        params = call.parameters
        _check_features(self.spec, call.features)
        prompt, answer = self._prompt(call.messages, params.get("stop"))
        if cancel.is_set():
            return LocalResult(text="", finish_reason="cancelled", prompt_tokens=prompt.shape[-1])
        run = _Generation(self._model, self._tokenizer, prompt, cancel)
        # A new answer starts at its first non-blank character; a prefill's continuation
        # keeps the space that joins it to the partial text.
        run.trim_start = not prompts.is_prefill(call.messages)
        return (yield from run.pieces(self._options(params, prompt.shape[-1]), answer))

    def _prompt(self, messages: list[Message], stop: Any) -> tuple[torch.Tensor, AnswerFilter]:
        tokenizer = self._tokenizer
        stops = as_list(stop)
        if not getattr(tokenizer, "chat_template", None):
            ids = tokenizer(prompts.transcript(messages), return_tensors="pt").input_ids
            return ids, AnswerFilter(stops, prompts.TURN_MARKERS)
        opening = not prompts.is_prefill(messages)  # a prefill continues, no new turn

        def render(turns: list[dict[str, str]]) -> str:
            rendered = tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=opening
            )
            return str(rendered)

        try:
            text = prompts.template_prompt(render, messages)
        except Exception as exc:  # jinja2's TemplateError carries the template's own reason
            raise InvalidParameter(
                f"Model '{self.spec.model_id}' cannot take this conversation: {exc}"
            ) from exc
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        return ids, AnswerFilter(stops)

    def _options(self, params: dict[str, Any], prompt_tokens: int) -> dict[str, Any]:
        """Keyword arguments for ``generate``; what the call leaves out comes from the
        model's own generation config."""
        max_tokens = int(params.get("max_tokens") or DEFAULT_MAX_TOKENS)
        context = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(context, int):
            if prompt_tokens >= context:
                raise InvalidParameter(
                    f"The prompt is {prompt_tokens} tokens; model '{self.spec.model_id}' "
                    f"reads at most {context}."
                )
            max_tokens = min(max_tokens, context - prompt_tokens)
        options: dict[str, Any] = {"max_new_tokens": max_tokens}
        temperature = params.get("temperature")
        if temperature is not None and float(temperature) <= 0:
            options["do_sample"] = False
        elif temperature is not None:
            options.update(do_sample=True, temperature=float(temperature))
        if params.get("top_p") is not None and options.get("do_sample", True):
            options["top_p"] = float(params["top_p"])
        if params.get("seed") is not None:
            options["seed"] = int(params["seed"])
        return options


class _TokenQueue(BaseStreamer):
    """``generate`` calls ``put`` with the prompt, then with each new token."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[list[int] | BaseException | None] = queue.SimpleQueue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.queue.put([int(t) for t in value.reshape(-1).tolist()])
        self._prompt_seen = True

    def end(self) -> None:
        self.queue.put(None)


class _Halt(StoppingCriteria):
    """Checked by ``generate`` after every token."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = any(event.is_set() for event in self.events)
        flags = torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)
        return flags  # type: ignore[return-value]


class _Generation:
    """One ``generate`` call in a helper thread, read token by token."""

    def __init__(
        self, model: Any, tokenizer: Any, prompt: torch.Tensor, cancel: threading.Event
    ) -> None:
        self.model, self.tokenizer, self.prompt, self.cancel = model, tokenizer, prompt, cancel
        self.halt = threading.Event()  # a stop sequence matched, or the reader went away
        self.tokens = _TokenQueue()
        self.trim_start = True  # leading whitespace of the answer is dropped

    def pieces(
        self, options: dict[str, Any], answer: AnswerFilter
    ) -> Generator[str, None, LocalResult]:
        worker = threading.Thread(target=self._run, args=(options,), name="transformers-generate")
        worker.start()
        detokenizer = _Detokenizer(self.tokenizer, self.prompt[0, -_DECODE_CONTEXT:].tolist())
        text, count, last, stopped = "", 0, -1, False
        try:
            while not stopped and not self.cancel.is_set():
                item = self.tokens.queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                for token in item:
                    count, last = count + 1, token
                    piece = answer.feed(detokenizer.add(token))
                    stopped = answer.stopped
                    piece = piece if text or not self.trim_start else piece.lstrip()
                    if piece:
                        text += piece
                        yield piece
                    if stopped:
                        break
            tail = "" if stopped or self.cancel.is_set() else answer.flush()
            tail = tail if text or not self.trim_start else tail.lstrip()
            if tail:
                text += tail
                yield tail
        finally:
            self.halt.set()
            worker.join()
        reason = "cancelled" if self.cancel.is_set() else self._reason(options, count, last)
        reason = "stop" if stopped else reason
        return LocalResult(
            text=text,
            finish_reason=reason,
            stop_sequence=answer.stop_sequence,
            prompt_tokens=int(self.prompt.shape[-1]),
            completion_tokens=count,
        )

    def _run(self, options: dict[str, Any]) -> None:
        options = dict(options)
        seed = options.pop("seed", None)
        try:
            if seed is not None:
                torch.manual_seed(seed)  # process-wide: generate takes no per-call generator
            prompt = self.prompt.to(self.model.device)
            with torch.inference_mode():
                self.model.generate(
                    input_ids=prompt,
                    attention_mask=torch.ones_like(prompt),
                    pad_token_id=self._pad_id(),
                    streamer=self.tokens,
                    stopping_criteria=StoppingCriteriaList([_Halt(self.cancel, self.halt)]),
                    **options,
                )
        except BaseException as exc:
            self.tokens.queue.put(exc)
            self.tokens.end()

    def _pad_id(self) -> int | None:
        pad = self.model.generation_config.pad_token_id
        if pad is None:
            pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = _eos_ids(self.model)[0] if _eos_ids(self.model) else None
        return int(pad) if pad is not None else None

    def _reason(self, options: dict[str, Any], count: int, last: int) -> str:
        if last in _eos_ids(self.model):
            return "stop"
        return "length" if count >= options["max_new_tokens"] else "stop"


def _eos_ids(model: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


class _Detokenizer:
    """Token ids to text pieces. A token's text is what decoding a short window gains by
    it, so tokenizers that place spaces or split characters across tokens still come out
    exact; a piece ending in half a UTF-8 character waits for the next token."""

    def __init__(self, tokenizer: Any, context: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(context)
        self.start = 0  # decoding window: ids[start:] now, ids[start:read] before
        self.read = len(self.ids)

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.start : self.read])
        after = self._decode(self.ids[self.start :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.start, self.read = self.read, len(self.ids)
        return after[len(before) :]

    def _decode(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text


if TYPE_CHECKING:  # mypy checks the class against the runtime protocol
    _conforms: RuntimeFactory = TransformersRuntime
