"""Helpers the torch runtimes (transformers, diffusers, Shap-E) share: where to run and
in which dtype, what a model's weights weigh on disk and in memory, the messages a user
sees when a model folder cannot be loaded, quiet loading, and giving memory back after
an unload."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

from pluggably.errors import BackendUnavailable
from pluggably.runtimes.base import ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def torch_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_and_dtype(gpu_dtype: Any = torch.float16) -> tuple[torch.device, Any]:
    """The device to run on and the dtype to load the weights in: ``gpu_dtype`` on a GPU
    (``"auto"`` keeps the checkpoint's own), float32 on a CPU, where half-precision
    matrix products are slow or missing."""
    device = torch_device()
    return device, gpu_dtype if device.type == "cuda" else torch.float32


def quiet_loading() -> None:
    """No progress bars while weights load: a server's log is no terminal. (Every torch
    runtime loads some part through transformers; diffusers has its own switch.)"""
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def weight_bytes(path: Path) -> int:
    """The weights a load would read: per folder, the default weight files (a variant
    such as ``model.fp16.safetensors`` is an alternative copy, not an extra part), and
    safetensors over pickled ``.bin`` files where a folder has both."""
    if path.is_file():
        return path.stat().st_size
    folders: dict[Path, list[Path]] = {}
    for file in path.rglob("*") if path.is_dir() else ():
        if file.is_file() and file.suffix in WEIGHT_SUFFIXES:
            folders.setdefault(file.parent, []).append(file)
    total = 0
    for files in folders.values():
        plain = [f for f in files if "." not in f.stem] or files
        safe = [f for f in plain if f.suffix == ".safetensors"]
        total += sum(f.stat().st_size for f in safe or plain)
    return total


def estimated_bytes(spec: ModelSpec) -> int:
    """Memory a model will take before it is loaded: its weight files, else the size
    the registry recorded."""
    return weight_bytes(spec.path) or (spec.size_bytes or 0)


def module_bytes(modules: Iterable[Any]) -> int:
    """Bytes held by the parameters and buffers of the torch modules among ``modules``."""
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            tensors = [*module.parameters(), *module.buffers()]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def require_folder(spec: ModelSpec, marker: str) -> None:
    """Fail early, with a message a user can act on, when the model folder is unusable."""
    where = f"Model '{spec.model_id}'"
    if not spec.path.exists():
        raise BackendUnavailable(f"{where} has no files: its folder is missing.")
    if not spec.path.is_dir():
        raise BackendUnavailable(f"{where} should be a folder of {spec.format} files, not a file.")
    if not (spec.path / marker).is_file():
        raise BackendUnavailable(
            f"{where} is incomplete: its folder has no {marker}; download it again."
        )


def load_failed(spec: ModelSpec, exc: BaseException, library: str) -> BackendUnavailable:
    """The library's first line of complaint, without the server's paths."""
    lines = str(exc).strip().splitlines()
    reason = (lines[0] if lines else "") or type(exc).__name__
    reason = reason.replace(str(spec.path), "the model folder")[:300].rstrip(".")
    return BackendUnavailable(
        f"Model '{spec.model_id}' could not be loaded by {library}: {reason}. "
        "The files may be damaged or of another format; download the model again."
    )


def not_loaded(spec: ModelSpec) -> BackendUnavailable:
    return BackendUnavailable(f"Model '{spec.model_id}' is not loaded.")


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
