"""Text-to-image and image-to-image through Hugging Face diffusers (a pipeline folder with
``model_index.json``). Image-to-image reuses the loaded pipeline's components, so the
weights are in memory once."""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import threading
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image
from diffusers.utils import logging as diffusers_logging
from PIL import Image

from pluggably.errors import FeatureNotSupported, InvalidParameter
from pluggably.messages import Message
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, RuntimeFactory
from pluggably.runtimes.torch_common import not_loaded
from pluggably.runtimes.torch_runtime import TorchRuntime

SIZE_MULTIPLE = 8  # the latent grid: every diffusers pipeline needs sizes divisible by 8


class Cancelled(Exception):
    """Raised from a step callback to leave a pipeline between two steps."""


def last_user_message(spec: ModelSpec, messages: list[Message]) -> Message:
    message = next((m for m in reversed(messages) if m.role == "user"), None)
    if message is None or not (message.text.strip() or message.images):
        raise InvalidParameter(f"Model '{spec.model_id}' needs a prompt in a user message.")
    return message


def seeded(seed: Any, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class PipelineRuntime(TorchRuntime):
    """A runtime on one diffusers pipeline (a folder with ``model_index.json``)."""

    marker = "model_index.json"
    pipeline_class: ClassVar[Any]  # whose from_pretrained reads the folder
    makes: ClassVar[str]  # what comes out, in the answer to a request to stream

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._pipe: Any = None

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def _read(self, device: torch.device, dtype: Any) -> Any:
        diffusers_logging.disable_progress_bar()  # a server's log is no terminal
        pipe = self.pipeline_class.from_pretrained(
            self.spec.path, local_files_only=True, dtype=dtype
        )
        pipe.to(device)
        return pipe

    def _keep(self, weights: Any) -> Iterable[Any]:
        weights.set_progress_bar_config(disable=True)
        self._pipe = weights
        return weights.components.values()  # type: ignore[no-any-return]

    def _drop(self) -> None:
        self._pipe = None

    def stream(self, call: LocalCall, cancel: threading.Event) -> Generator[str, None, LocalResult]:
        raise FeatureNotSupported(
            f"Model '{self.spec.model_id}' makes {self.makes}; it cannot stream."
        )

    def _prompt(self, call: LocalCall) -> Message:
        """The user message the pipeline draws from, once it is loaded."""
        if self._pipe is None:
            raise not_loaded(self.spec)
        return last_user_message(self.spec, call.messages)


class DiffusersRuntime(PipelineRuntime):
    kind = "diffusers"
    library = "diffusers"
    pipeline_class = AutoPipelineForText2Image
    makes = "images"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._img2img: Any = None

    def _drop(self) -> None:
        self._pipe = self._img2img = None

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        message = self._prompt(call)
        params = call.parameters
        size = self._size(params)
        count = int(params.get("num_images") or 1)
        options: dict[str, Any] = {}
        if message.images:
            self._check_strength(params)
            pipe = self._image_pipe()
            # One input image per output: with fewer, diffusers repeats them itself but
            # warns that it will stop doing so (an error from diffusers 1.0 on).
            image = self._init_image(message, size)
            options.update(image=[image] * count, strength=params.get("strength"))
        else:
            pipe = self._pipe
            if size:
                options.update(width=size[0], height=size[1])
        options.update(
            prompt=message.text,
            negative_prompt=params.get("negative_prompt") or None,
            num_inference_steps=params.get("num_inference_steps"),
            guidance_scale=params.get("guidance_scale"),
            num_images_per_prompt=count,
            generator=seeded(params.get("seed"), pipe.device),
        )
        if cancel.is_set():
            return LocalResult(finish_reason="cancelled")
        try:
            with torch.inference_mode():
                output = pipe(**self._accepted(pipe, options, cancel))
        except Cancelled:
            return LocalResult(finish_reason="cancelled")
        return LocalResult(images=[png(image) for image in output.images])

    def _image_pipe(self) -> Any:
        if self._img2img is None:
            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(self._pipe)
            except ValueError as exc:
                raise FeatureNotSupported(
                    f"Model '{self.spec.model_id}' cannot start from an input image."
                ) from exc
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def _accepted(self, pipe: Any, options: dict[str, Any], cancel: threading.Event) -> Any:
        """The options this pipeline takes; unset ones fall back to its defaults. Cancelling
        raises out of the step callback: setting ``pipe._interrupt`` would still run the
        VAE decoder over the unfinished latents."""
        accepted = inspect.signature(pipe.__call__).parameters
        for name, value in list(options.items()):
            if value is None:
                del options[name]
            elif name not in accepted:
                raise FeatureNotSupported(
                    f"Model '{self.spec.model_id}' does not take the parameter '{name}'."
                )

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            if cancel.is_set():
                raise Cancelled
            return tensors

        if "callback_on_step_end" in accepted:
            options["callback_on_step_end"] = on_step_end
        return options

    def _size(self, params: dict[str, Any]) -> tuple[int, int] | None:
        width, height = params.get("width"), params.get("height")
        side = width if width is not None else height
        if side is None:
            return None
        size = (int(side), int(height if height is not None else side))  # one side: a square
        if any(n <= 0 or n % SIZE_MULTIPLE for n in size):
            raise InvalidParameter(
                f"width and height must be positive multiples of {SIZE_MULTIPLE}; got {size}."
            )
        return size

    def _init_image(self, message: Message, size: tuple[int, int] | None) -> Image.Image:
        try:
            data = base64.b64decode(message.images[-1].data_b64, validate=True)
            image: Image.Image = Image.open(io.BytesIO(data))
            image.load()
        except (binascii.Error, ValueError, OSError, Image.DecompressionBombError) as exc:
            raise InvalidParameter("The input image is not a readable PNG, JPEG or WebP.") from exc
        image = image.convert("RGB")
        if size is None:  # keep the image's size, down to the latent grid
            size = (
                max(SIZE_MULTIPLE, image.width // SIZE_MULTIPLE * SIZE_MULTIPLE),
                max(SIZE_MULTIPLE, image.height // SIZE_MULTIPLE * SIZE_MULTIPLE),
            )
        return image.resize(size) if image.size != size else image

    def _check_strength(self, params: dict[str, Any]) -> None:
        strength = params.get("strength")
        steps = params.get("num_inference_steps")
        if strength is not None and not 0 < float(strength) <= 1:
            raise InvalidParameter("strength must be above 0 and at most 1.")
        if strength is not None and steps is not None and int(int(steps) * float(strength)) < 1:
            raise InvalidParameter(
                "num_inference_steps x strength is under one step; raise either of them."
            )


if TYPE_CHECKING:  # mypy checks the class against the runtime protocol
    _conforms: RuntimeFactory = DiffusersRuntime
