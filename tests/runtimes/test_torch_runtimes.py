"""The transformers, diffusers and Shap-E runtimes on tiny random models that the tests
build on disk, loaded through the runtimes' normal loading code. Random weights say
nothing about quality: these tests check plumbing (text, counts, streaming, images,
meshes, cancellation, reloading, errors)."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("diffusers")
trimesh = pytest.importorskip("trimesh")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from pluggably.errors import BackendUnavailable, FeatureNotSupported, InvalidParameter  # noqa: E402
from pluggably.messages import Features, ImageInput, Message, ResponseFormat  # noqa: E402
from pluggably.runtimes import prompts, shap_e_rt  # noqa: E402
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec  # noqa: E402
from pluggably.runtimes.diffusers_rt import DiffusersRuntime  # noqa: E402
from pluggably.runtimes.factory import make_runtime  # noqa: E402
from pluggably.runtimes.shap_e_rt import ShapERuntime  # noqa: E402
from pluggably.runtimes.transformers_rt import TransformersRuntime  # noqa: E402
from tests.fixtures.tiny_models import (  # noqa: E402
    build_tiny_diffusers,
    build_tiny_shap_e,
    build_tiny_transformers,
    marching_cubes_tables,
)

# diffusers' Heun scheduler hands torch tensors to numpy, which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

HELLO = [Message("system", "Be brief."), Message("user", "hello world")]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Models this small gain nothing from parallel kernels, and on a busy 2-core machine
    the OpenMP workers waiting on each other make each step 30-100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def llm_path(models: Path) -> Path:
    return build_tiny_transformers(models / "llm")


@pytest.fixture(scope="session")
def chat_llm_path(models: Path) -> Path:
    return build_tiny_transformers(models / "chat-llm", chat_template=True)


@pytest.fixture(scope="session")
def sd_path(models: Path) -> Path:
    return build_tiny_diffusers(models / "sd")


@pytest.fixture(scope="session")
def shap_e_path(models: Path) -> Path:
    return build_tiny_shap_e(models / "shap-e")


def spec(path: Path, fmt: str, modality: str = "text", model_id: str = "tiny") -> ModelSpec:
    return ModelSpec(model_id=model_id, path=path, format=fmt, modality=modality)


@pytest.fixture
def llm(llm_path: Path) -> Iterator[TransformersRuntime]:
    runtime = TransformersRuntime(spec(llm_path, "transformers"))
    runtime.load()
    yield runtime
    runtime.unload()


@pytest.fixture
def painter(sd_path: Path) -> Iterator[DiffusersRuntime]:
    runtime = DiffusersRuntime(spec(sd_path, "diffusers", "image"))
    runtime.load()
    yield runtime
    runtime.unload()


@pytest.fixture
def sculptor(shap_e_path: Path) -> Iterator[ShapERuntime]:
    runtime = ShapERuntime(spec(shap_e_path, "shap_e", "3d"), grid_size=16, preview_size=64)
    runtime.load()
    yield runtime
    runtime.unload()


def drain(pieces: Any) -> tuple[list[str], LocalResult]:
    seen: list[str] = []
    while True:
        try:
            seen.append(next(pieces))
        except StopIteration as done:
            return seen, done.value


class WatchedEvent(threading.Event):
    """A cancel event that reports when the runtime has checked it ``checks`` times,
    i.e. when generation is under way."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks
        self.reached = threading.Event()

    def is_set(self) -> bool:
        self.checks -= 1
        if self.checks <= 0:
            self.reached.set()
        return super().is_set()


def cancel_midway(generate: Callable[[threading.Event], LocalResult], checks: int) -> LocalResult:
    """Run ``generate`` in a worker thread; set its cancel event from this thread once the
    runtime has checked it ``checks`` times."""
    cancel = WatchedEvent(checks)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(generate, cancel)
        assert cancel.reached.wait(30)
        cancel.set()
        return future.result(timeout=30)


def file_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.safetensors"))


def garbage_folder(root: Path, marker: str) -> Path:
    root.mkdir()
    (root / marker).write_text("{not json")
    (root / "model.safetensors").write_bytes(b"\x00garbage" * 64)
    return root


# --- transformers ---------------------------------------------------------------------


def test_text_generation_counts_tokens(llm: TransformersRuntime, llm_path: Path) -> None:
    result = llm.generate(LocalCall(HELLO, {"max_tokens": 12, "temperature": 0}), threading.Event())

    tokenizer = AutoTokenizer.from_pretrained(llm_path)
    assert result.text
    assert result.finish_reason == "length"
    assert result.completion_tokens == 12
    assert result.prompt_tokens == len(tokenizer(prompts.transcript(HELLO)).input_ids)


def test_stream_yields_pieces_in_order(llm: TransformersRuntime) -> None:
    call = LocalCall(HELLO, {"max_tokens": 16, "temperature": 1.0, "seed": 7})
    pieces, result = drain(llm.stream(call, threading.Event()))

    assert len(pieces) > 1
    assert all(pieces)
    assert "".join(pieces) == result.text
    assert result.completion_tokens == 16
    again = llm.generate(call, threading.Event())
    assert again.text == result.text  # same seed, same answer


def test_stop_sequence_cuts_the_answer(llm: TransformersRuntime) -> None:
    full = llm.generate(LocalCall(HELLO, {"max_tokens": 24, "temperature": 0}), threading.Event())
    assert full.text
    cut = len(full.text) // 2
    stop = full.text[cut : cut + 3]

    call = LocalCall(HELLO, {"max_tokens": 24, "temperature": 0, "stop": [stop]})
    pieces, result = drain(llm.stream(call, threading.Event()))

    assert result.text == full.text[: full.text.index(stop)]
    assert "".join(pieces) == result.text
    assert result.finish_reason == "stop"
    assert result.completion_tokens < 24


def test_chat_template_is_used(chat_llm_path: Path) -> None:
    runtime = TransformersRuntime(spec(chat_llm_path, "transformers"))
    runtime.load()
    result = runtime.generate(LocalCall(HELLO, {"max_tokens": 5}), threading.Event())

    tokenizer = AutoTokenizer.from_pretrained(chat_llm_path)
    turns = [{"role": m.role, "content": m.text} for m in HELLO]
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|assistant|>\n")
    assert result.prompt_tokens == len(tokenizer(text, add_special_tokens=False).input_ids)
    assert result.completion_tokens == 5


def test_cancel_stops_text_generation(llm: TransformersRuntime) -> None:
    cancel = threading.Event()
    pieces = llm.stream(LocalCall(HELLO, {"max_tokens": 200, "temperature": 1.0}), cancel)
    first = next(pieces)
    setter = threading.Thread(target=cancel.set)
    setter.start()
    setter.join()
    rest, result = drain(pieces)

    assert result.finish_reason == "cancelled"
    assert result.text == first + "".join(rest)
    assert 0 < result.completion_tokens < 200


def test_cancel_before_start_returns_nothing(llm: TransformersRuntime) -> None:
    cancel = threading.Event()
    cancel.set()
    result = llm.generate(LocalCall(HELLO, {"max_tokens": 50}), cancel)

    assert result.finish_reason == "cancelled"
    assert result.text == ""


def test_text_model_rejects_images(llm: TransformersRuntime) -> None:
    message = Message("user", "what is this?", (ImageInput("image/png", "AAAA"),))
    with pytest.raises(FeatureNotSupported):
        llm.generate(LocalCall([message]), threading.Event())


JSON_OBJECT = Features(response_format=ResponseFormat("json_object"))


def test_json_format_is_refused_not_ignored(llm: TransformersRuntime) -> None:
    with pytest.raises(FeatureNotSupported, match="JSON"):
        llm.generate(LocalCall(HELLO, features=JSON_OBJECT), threading.Event())
    result = llm.generate(LocalCall(HELLO, {"format": "text", "max_tokens": 2}), threading.Event())
    assert result.completion_tokens == 2


def test_text_unload_and_load_again(llm_path: Path) -> None:
    runtime = TransformersRuntime(spec(llm_path, "transformers"))
    assert runtime.memory_bytes == file_bytes(llm_path)
    runtime.load()
    assert runtime.memory_bytes > 0
    runtime.unload()
    assert runtime.memory_bytes == file_bytes(llm_path)
    runtime.load()

    result = runtime.generate(LocalCall(HELLO, {"max_tokens": 3}), threading.Event())
    assert result.completion_tokens == 3


# --- diffusers ------------------------------------------------------------------------


def png_sizes(images: list[bytes]) -> list[tuple[int, int]]:
    sizes = []
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            sizes.append(image.size)
    return sizes


def test_text_to_image(painter: DiffusersRuntime) -> None:
    params = {"width": 64, "height": 48, "num_inference_steps": 2, "num_images": 2, "seed": 1}
    call = LocalCall([Message("user", "a red cat")], params, "image")
    result = painter.generate(call, threading.Event())

    assert result.finish_reason == "stop"
    assert png_sizes(result.images) == [(64, 48), (64, 48)]
    assert painter.generate(call, threading.Event()).images == result.images  # seeded


def test_image_to_image(painter: DiffusersRuntime) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 24), (200, 30, 30)).save(buffer, format="PNG")
    picture = ImageInput("image/png", base64.b64encode(buffer.getvalue()).decode())
    message = Message("user", "make it blue", (picture,))
    params: dict[str, Any] = {"num_inference_steps": 4, "strength": 0.5, "seed": 3}

    same_size = painter.generate(LocalCall([message], params, "image"), threading.Event())
    resized = painter.generate(
        LocalCall([message], {**params, "width": 32, "height": 32}, "image"), threading.Event()
    )

    assert png_sizes(same_size.images) == [(40, 24)]
    assert png_sizes(resized.images) == [(32, 32)]
    # Several outputs from one input image, without diffusers' deprecated repetition
    # (its FutureWarning is an error under this suite's warning filter).
    two = painter.generate(
        LocalCall([message], {**params, "num_images": 2}, "image"), threading.Event()
    )
    assert png_sizes(two.images) == [(40, 24), (40, 24)]


def test_image_parameters_are_checked(painter: DiffusersRuntime) -> None:
    with pytest.raises(InvalidParameter):
        painter.generate(LocalCall([Message("user", "x")], {"width": 50}), threading.Event())
    with pytest.raises(FeatureNotSupported):
        drain(painter.stream(LocalCall([Message("user", "x")]), threading.Event()))


def test_cancel_stops_diffusion(painter: DiffusersRuntime) -> None:
    call = LocalCall([Message("user", "a cat")], {"num_inference_steps": 500}, "image")
    # the first check comes before the pipeline starts, the second after its first step
    result = cancel_midway(lambda cancel: painter.generate(call, cancel), checks=2)

    assert result.finish_reason == "cancelled"
    assert result.images == []


def test_image_unload_and_load_again(sd_path: Path) -> None:
    runtime = DiffusersRuntime(spec(sd_path, "diffusers", "image"))
    assert runtime.memory_bytes == file_bytes(sd_path)
    runtime.load()
    assert runtime.memory_bytes > 0
    runtime.unload()
    runtime.load()

    call = LocalCall([Message("user", "a dog")], {"num_inference_steps": 1}, "image")
    assert png_sizes(runtime.generate(call, threading.Event()).images) == [(64, 64)]


# --- Shap-E ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_text_to_mesh(sculptor: ShapERuntime, fmt: str) -> None:
    params = {"num_inference_steps": 2, "output_format": fmt, "seed": 0}
    result = sculptor.generate(
        LocalCall([Message("user", "a chair")], params, "3d"), threading.Event()
    )

    assert result.finish_reason == "stop"
    assert result.mesh_format == fmt
    assert result.mesh
    mesh = trimesh.load(io.BytesIO(result.mesh), file_type=fmt, force="mesh")
    assert len(mesh.faces) > 0
    assert len(mesh.vertices) > 0
    assert result.preview
    with Image.open(io.BytesIO(result.preview)) as preview:
        assert (preview.format, preview.size) == ("PNG", (64, 64))


def test_mesh_parameters_are_checked(sculptor: ShapERuntime) -> None:
    call = LocalCall([Message("user", "a chair")], {"output_format": "stl"}, "3d")
    with pytest.raises(InvalidParameter):
        sculptor.generate(call, threading.Event())
    with pytest.raises(FeatureNotSupported):
        drain(sculptor.stream(call, threading.Event()))


def test_cancel_stops_shap_e(sculptor: ShapERuntime) -> None:
    call = LocalCall([Message("user", "a chair")], {"num_inference_steps": 300}, "3d")
    # the first check comes before the pipeline starts, the second at its first step
    result = cancel_midway(lambda cancel: sculptor.generate(call, cancel), checks=2)

    assert result.finish_reason == "cancelled"
    assert result.mesh is None


def test_mesh_unload_and_load_again(shap_e_path: Path) -> None:
    runtime = ShapERuntime(spec(shap_e_path, "shap_e", "3d"), grid_size=8, preview_size=32)
    assert runtime.memory_bytes == file_bytes(shap_e_path)
    runtime.load()
    assert runtime.memory_bytes > 0
    runtime.unload()
    runtime.load()

    call = LocalCall([Message("user", "a cup")], {"num_inference_steps": 1}, "3d")
    assert runtime.generate(call, threading.Event()).mesh_format == "glb"


def test_marching_cubes_tables_close_a_sphere() -> None:
    from diffusers.pipelines.shap_e.renderer import MeshDecoder

    decoder = MeshDecoder()
    decoder.cases, decoder.masks = marching_cubes_tables()
    axis = torch.linspace(-1, 1, 20)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    field = 0.6 - (x**2 + y**2 + z**2).sqrt()  # positive inside
    out = decoder(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))

    sphere = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy())
    assert sphere.is_watertight
    assert sphere.volume == pytest.approx(4 / 3 * torch.pi * 0.6**3, rel=0.1)  # outward faces


# --- every runtime ------------------------------------------------------------------


RUNTIMES: list[tuple[type[Any], str, str]] = [
    (TransformersRuntime, "transformers", "config.json"),
    (DiffusersRuntime, "diffusers", "model_index.json"),
    (ShapERuntime, "shap_e", "model_index.json"),
]


@pytest.mark.parametrize(("runtime_cls", "fmt", "marker"), RUNTIMES)
def test_garbage_files_are_reported(
    runtime_cls: type[Any], fmt: str, marker: str, tmp_path: Path
) -> None:
    folder = garbage_folder(tmp_path / "broken", marker)
    with pytest.raises(BackendUnavailable) as caught:
        runtime_cls(spec(folder, fmt, model_id="org/broken")).load()

    message = caught.value.message
    assert "'org/broken'" in message
    assert str(tmp_path) not in message
    assert "Traceback" not in message


@pytest.mark.parametrize(("runtime_cls", "fmt", "marker"), RUNTIMES)
def test_missing_files_are_reported(
    runtime_cls: type[Any], fmt: str, marker: str, tmp_path: Path
) -> None:
    with pytest.raises(BackendUnavailable, match="'org/gone' has no files"):
        runtime_cls(spec(tmp_path / "gone", fmt, model_id="org/gone")).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendUnavailable, match=f"no {marker}"):
        runtime_cls(spec(tmp_path / "empty", fmt, model_id="org/empty")).load()


def test_wrong_kind_of_pipeline_is_reported(sd_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="'tiny' could not be loaded"):
        ShapERuntime(spec(sd_path, "shap_e", "3d")).load()


def test_shap_e_sizes_default_to_the_module_settings(
    shap_e_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shap_e_rt, "GRID_SIZE", 12)
    monkeypatch.setattr(shap_e_rt, "PREVIEW_SIZE", 40)
    made = make_runtime(spec(shap_e_path, "shap_e", "3d"))
    assert isinstance(made, ShapERuntime)
    assert (made.grid_size, made.preview_size) == (12, 40)
    given = ShapERuntime(spec(shap_e_path, "shap_e", "3d"), grid_size=8, preview_size=32)
    assert (given.grid_size, given.preview_size) == (8, 32)
    monkeypatch.setattr(shap_e_rt, "GRID_SIZE", None)
    expected = 128 if torch.cuda.is_available() else 64
    assert ShapERuntime(spec(shap_e_path, "shap_e", "3d")).grid_size == expected


@pytest.mark.parametrize(("runtime_cls", "fmt", "marker"), RUNTIMES)
def test_factory_makes_each_runtime(
    runtime_cls: type[Any], fmt: str, marker: str, tmp_path: Path
) -> None:
    runtime = make_runtime(spec(tmp_path, fmt))
    assert type(runtime) is runtime_cls
    assert runtime.kind == fmt
