"""Translation backends behind one interface (``base.py``): ``aws`` (Amazon Translate) and ``hf`` (a Hugging
Face seq2seq model), and the driver that sends each unique text once through a persistent cache.

A new backend is a class with the attributes and method of :class:`~.base.Backend`, added to :data:`BACKENDS`
with its cache identity in :func:`backend_identity`.
"""

from __future__ import annotations

from collections.abc import Callable

from reranker.core.errors import InputError
from reranker.preparation.translation.base import Backend, TranslationError

__all__ = ["BACKENDS", "Backend", "TranslationError", "backend_identity", "make_backend"]


def _aws(**options) -> Backend:
    from reranker.preparation.translation.aws import AwsTranslate

    return AwsTranslate(**options)


def _hf(**options) -> Backend:
    from reranker.preparation.translation.hf import HfTranslate

    return HfTranslate(**options)


# Backends by name: a factory taking the command-line options (``source``, ``target`` and the backend's own).
BACKENDS: dict[str, Callable[..., Backend]] = {"aws": _aws, "hf": _hf}


def make_backend(name: str, **options) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown translation backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name](**options)


def backend_identity(name: str, **options) -> str:
    """The cache identity a backend will have, known before the backend (a model, a client) is built."""
    if name == "hf":
        from reranker.preparation.translation.hf import model_identity

        return model_identity(options.get("model_name"), options["num_beams"], options["max_length"])
    return "amazon-translate"
