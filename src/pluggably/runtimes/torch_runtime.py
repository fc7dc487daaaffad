"""The load/unload life the torch runtimes (transformers, diffusers, Shap-E) share: a
model folder checked before reading, weights read quietly on the device in its dtype,
a failed read told in a user's terms, the memory the weights hold measured once loaded
and given back on unload. Each runtime says only how to read and keep its weights."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from pluggably.runtimes.base import ModelSpec
from pluggably.runtimes.torch_common import (
    device_and_dtype,
    estimated_bytes,
    load_failed,
    module_bytes,
    quiet_loading,
    release_memory,
    require_folder,
)


class TorchRuntime(ABC):
    marker: ClassVar[str]  # the file every model folder of this kind holds
    library: ClassVar[str]  # who could not read the weights, in a failed load's message
    gpu_dtype: ClassVar[Any] = torch.float16  # see device_and_dtype

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._loaded_bytes = 0

    @property
    @abstractmethod
    def loaded(self) -> bool: ...

    @property
    def memory_bytes(self) -> int:
        if self.loaded:
            return self._loaded_bytes
        return estimated_bytes(self.spec)

    def load(self) -> None:
        if self.loaded:
            return
        require_folder(self.spec, self.marker)
        device, dtype = device_and_dtype(self.gpu_dtype)
        quiet_loading()
        try:
            weights = self._read(device, dtype)
        except Exception as exc:
            raise load_failed(self.spec, exc, self.library) from exc
        self._loaded_bytes = module_bytes(self._keep(weights))

    def unload(self) -> None:
        self._drop()
        self._loaded_bytes = 0
        release_memory()

    @abstractmethod
    def _read(self, device: torch.device, dtype: Any) -> Any:
        """The weights, read from the model folder and placed on ``device``; whatever
        this raises is the library's complaint about the files."""

    @abstractmethod
    def _keep(self, weights: Any) -> Iterable[Any]:
        """Hold what ``_read`` returned; the torch modules among what comes back are
        what the loaded model weighs."""

    @abstractmethod
    def _drop(self) -> None:
        """Let go of every reference to the weights."""
