"""Write a trained checkpoint as a plain Hugging Face folder: config.json, model.safetensors, tokenizer files."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer

from reranker.errors import InputError
from reranker.modeling import resolve_model_path
from reranker.module import RerankerModule


def export_checkpoint(
    checkpoint_path: str | Path, output_dir: str | Path, tokenizer_name_or_path: str | None = None
) -> Path:
    """Export the cross-encoder of a Lightning checkpoint to ``output_dir``.

    The folder is written next to its destination and moved into place at the end, so a failure
    leaves no half-written export. The tokenizer is the base model's unless another is given.
    """
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise InputError(f"checkpoint {checkpoint_path} does not exist")
    module = RerankerModule.load_from_checkpoint(checkpoint_path, map_location="cpu")
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_path(tokenizer_name_or_path or module.hparams.model_name_or_path), use_fast=True
    )
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        module.model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir
