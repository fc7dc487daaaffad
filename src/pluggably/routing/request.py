"""What routing reads of a generate request, as a Protocol: generation's
``GenerateRequest`` satisfies it, and routing needs nothing from generation/ to choose
a model (generation depends on routing, never the reverse)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class RoutedMessage(Protocol):
    @property
    def content(self) -> str | None: ...


class RoutedInput(Protocol):
    """The inputs whose presence or wording hints at the modality."""

    @property
    def prompt(self) -> str | None: ...

    @property
    def messages(self) -> Sequence[RoutedMessage] | None: ...

    @property
    def images(self) -> Sequence[str] | None: ...

    @property
    def mesh(self) -> str | None: ...

    @property
    def texts(self) -> Sequence[str] | None: ...


class RoutedRequest(Protocol):
    """The request fields that pick the model, the provider and the fallbacks."""

    @property
    def model(self) -> str | None: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def modality(self) -> str | None: ...

    @property
    def selection_mode(self) -> str: ...

    @property
    def input(self) -> RoutedInput: ...
