"""What identifies a model's weights on disk, for caches and shard folders that must not mix two models.

A model folder is identified by each config, tokenizer and weight file's size and SHA-256 (of the whole
file up to 16 MiB, of 16 evenly spread 64 KiB blocks beyond), a checkpoint file by its own, one ONNX file of
an export by the export's files and its own. The scoring contract (``reranker.json``) is one of a folder's
files and travels inside a checkpoint, so what decides a score is part of the identity.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reranker.model.loading import resolve_model_path
from reranker.model.onnx_backend import split_onnx_path

SMALL_FILE = 16 << 20  # files up to this size are hashed whole
SAMPLES, SAMPLE_SIZE = 16, 64 << 10
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".txt", ".model")


def file_digest(path: Path) -> str:
    """SHA-256 of a small file, or of 16 evenly spread blocks (first and last included) of a large one."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= SMALL_FILE:
            digest.update(handle.read())
        else:
            for sample in range(SAMPLES):
                handle.seek((size - SAMPLE_SIZE) * sample // (SAMPLES - 1))
                digest.update(handle.read(SAMPLE_SIZE))
    return digest.hexdigest()


def model_folder(name_or_path: str) -> Path | None:
    """The local folder of a model: the path itself, or the hub cache's snapshot (None when absent)."""
    path = resolve_model_path(name_or_path)
    if Path(path).is_dir():
        return Path(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception:  # offline and not cached, unknown name...: the model loader reports it
        return None


def model_identity(name: str, folder: Path | None) -> dict:
    """What identifies a model's weights: its folder and each model file's size and digest.

    A hub name that is not in the local cache has no files to read: its name alone identifies it.
    """
    if folder is None:
        return {"name": name}
    folder = folder.resolve()
    # The top level and sentence-transformers' module folders (1_Pooling, 2_Normalize...).
    candidates = [*folder.glob("*"), *folder.glob("[0-9]*_*/*")]
    files = sorted(p for p in candidates if p.is_file() and p.suffix in MODEL_SUFFIXES)
    return {
        "path": str(folder),
        "files": {
            str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_digest(p)} for p in files
        },
    }


def file_identity(path: Path) -> dict:
    """A single model file (a ``.ckpt``, an ``.onnx``): its path, size and digest."""
    path = path.resolve()
    return {"path": str(path), "size": path.stat().st_size, "sha256": file_digest(path)}


def weights_identity(name_or_path: str) -> dict:
    """:func:`model_identity` of a model folder or hub name, of a Lightning ``.ckpt`` file, or of one ONNX
    file of an export (``EXPORT/onnx/FILE.onnx``: the export's files and that file)."""
    name_or_path = str(name_or_path)
    if name_or_path.endswith(".ckpt"):
        return file_identity(Path(name_or_path))
    onnx = split_onnx_path(name_or_path)
    if onnx is not None:
        folder = onnx[0]
        return {**model_identity(folder, model_folder(folder)), "onnx": file_identity(Path(name_or_path))}
    return model_identity(name_or_path, model_folder(name_or_path))
