"""Paths and settings every benchmark script shares.

The peers run from the project's virtual environments (``make test`` builds both): ``.venv`` for ours and
sentence-transformers, ``.venv-compat`` (transformers 4) for FlagEmbedding and sentence-transformers' ONNX
backend. ``SHARED`` (default
``../shared`` beside the project) holds the data; ``ME5`` (default ``benchmarks/work/me5-small``, built by
``setup.py`` with ``../shared/tools/me5-small/convert.sh`` when missing) is multilingual-e5-small.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared"))
ME5_SMALL = Path(os.environ.get("ME5", WORK / "me5-small"))
PYTHONS = {
    "ours": str(ROOT / ".venv" / "bin" / "python"),
    "sentence-transformers": str(ROOT / ".venv" / "bin" / "python"),
    "FlagEmbedding": str(ROOT / ".venv-compat" / "bin" / "python"),
}
# Scoring adds the ONNX systems; sentence-transformers' ONNX backend (Optimum ONNX) needs transformers 4.
SCORERS = {
    **PYTHONS,
    "ours-onnx": PYTHONS["ours"],
    "ours-onnx-int8": PYTHONS["ours"],
    "sentence-transformers-onnx-int8": PYTHONS["FlagEmbedding"],
}


def worker_env() -> dict[str, str]:
    """The environment of every measured process: offline, this checkout importable, no tokenizer threads."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
    }
