"""Train and evaluate cross-encoder rerankers with PyTorch Lightning and Hydra."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Reranker"]


def __getattr__(name: str):
    # Imported on first use, so that `import reranker` stays cheap (no torch or transformers).
    if name == "Reranker":
        from reranker.serving.inference import Reranker

        return Reranker
    raise AttributeError(f"module 'reranker' has no attribute {name!r}")
