"""The neutral conversation types that generation, providers, runtimes and surfaces
all speak."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInput:
    mime: str
    data_b64: str

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.data_b64}"


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    text: str
    images: tuple[ImageInput, ...] = ()
