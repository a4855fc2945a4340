"""What a translation backend is: the :class:`Backend` interface and the error it raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Backend(Protocol):
    """What the driver needs from a translation backend."""

    name: str  # part of the cache key: "aws", "hf", ...
    model: str  # part of the cache key: the model (and settings) or service that produced the text
    chunk_size: int  # texts per step of the driver, which commits the cache after each step
    max_segment_bytes: int  # longer texts are sent in parts cut at sentence ends (UTF-8 bytes)

    def translate(self, segments: Sequence[str]) -> list[str]:
        """Translations of ``segments``, in order; raises ``TranslationError`` when it cannot."""
        ...


class TranslationError(RuntimeError):
    """A backend could not translate (service errors past the retry budget, an empty translation, ...)."""
