"""Texts to embeddings with a bi-encoder: a Hugging Face encoder, its pooling and L2 normalisation.

The pooling (``mean`` over the non-padding tokens, or the first token, ``cls``) is read from the model's
own sentence-transformers files (``modules.json`` and its ``Pooling`` module's ``config.json``) when it
has them; otherwise ``pooling`` must be given, since a wrong pooling gives plausible-looking but poor
embeddings. Texts are encoded longest first, in batches of similar length, so padding stays small.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from reranker.core.errors import InputError
from reranker.core.progress import Progress
from reranker.model.identity import model_folder
from reranker.model.loading import load_tokenizer, quiet_transformers, resolve_model_path
from reranker.preparation.retrievers.onnx_encoder import pool

POOLINGS = ("mean", "cls")
BACKENDS = ("torch", "onnx")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# sentence-transformers modules this encoder reproduces; any other (Dense, WeightedLayerPooling...) would
# change the embedding, so a model holding one is refused rather than encoded differently.
KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")
# sentence-transformers 2-4 name the mode by booleans; 5 and later by ``pooling_mode``.
LEGACY_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}
OTHER_LEGACY_MODES = (
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


def read_modules(folder: Path | None) -> tuple[str | None, str | None]:
    """``(pooling, transformer_subfolder)`` stated by a sentence-transformers folder (Nones without one)."""
    if folder is None or not (folder / "modules.json").is_file():
        return None, None
    where = folder / "modules.json"
    try:
        modules = json.loads(where.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{where}, line {err.lineno}: not valid JSON ({err.msg})") from None
    pooling = subfolder = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in KNOWN_MODULES:
            raise InputError(
                f"{where}: module {kind!r} is not supported by the dense retriever "
                f"(supported: {', '.join(KNOWN_MODULES)})"
            )
        if kind == "Transformer":
            subfolder = module.get("path", "")
        elif kind == "Pooling":
            pooling = _pooling_mode(folder / module.get("path", "") / "config.json")
    return pooling, subfolder


def _pooling_mode(config_file: Path) -> str:
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{config_file}: cannot read the pooling config ({err})") from None
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in LEGACY_MODES.items() if config.get(key)]
        modes += [key for key in OTHER_LEGACY_MODES if config.get(key)]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1 or modes[0] not in POOLINGS:
        raise InputError(
            f"{config_file}: field 'pooling_mode' is {modes}; the dense retriever supports one of "
            f"{', '.join(POOLINGS)}"
        )
    return modes[0]


def choose_pooling(stated: str | None, option: str | None, model: str) -> str:
    """The model's stated pooling, or the option; an option that overrides the model says so once."""
    if option is not None and option not in POOLINGS:
        raise InputError(f"--pooling must be one of {', '.join(POOLINGS)}, got {option!r}")
    if stated is None and option is None:
        raise InputError(
            f"model {model} states no pooling (no sentence-transformers modules.json); "
            "set --pooling mean|cls (e5 models use mean, bge models cls: see the model card)"
        )
    if stated is not None and option is not None and option != stated:
        print(f"dense: --pooling {option} overrides the model's own pooling ({stated})", file=sys.stderr)
    return option or stated


def pick_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def check_backend(backend: str, dtype: str | None) -> None:
    """``torch`` (any dtype) or ``onnx`` (float32 only)."""
    if backend not in BACKENDS:
        raise InputError(f"--retriever-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx" and dtype not in (None, "float32"):
        raise InputError(
            f"--retriever-backend onnx runs float32; --retriever-dtype {dtype} needs the torch backend"
        )


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """float16 on a GPU unless told otherwise; float32 on a CPU, where half precision is slow."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"--retriever-dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


class Embedder:
    """A bi-encoder: ``encode(texts, prefix)`` gives ``[N, D]`` float32 embeddings in the texts' order.

    ``backend="onnx"`` runs the encoder through ONNX Runtime (float32, built for the run:
    ``onnx_encoder.py``), the same embeddings to rounding, faster on CPU.
    """

    def __init__(
        self,
        model: str,
        pooling: str | None = None,
        normalize: bool = True,
        batch_size: int = 64,
        max_length: int = 512,
        device: str | None = None,
        dtype: str | None = None,
        backend: str = "torch",
    ) -> None:
        from transformers import AutoModel

        if batch_size < 1 or max_length < 1:
            raise InputError(f"dense batch size and max length must be >= 1, got {batch_size}, {max_length}")
        self.folder = model_folder(model)
        stated, subfolder = read_modules(self.folder)
        self.pooling = choose_pooling(stated, pooling, model)
        source = str(self.folder / subfolder) if self.folder is not None and subfolder else model
        self.tokenizer = load_tokenizer(source)
        check_backend(backend, dtype)
        self.device = pick_device(device)
        self.dtype = pick_dtype("float32" if backend == "onnx" else dtype, self.device)
        with quiet_transformers():
            try:
                self.model = AutoModel.from_pretrained(resolve_model_path(source))
            except OSError as err:
                raise InputError(f"cannot load embedding model {model!r}: {err}".splitlines()[0]) from None
        self.dim = int(self.model.config.hidden_size)
        self.onnx = None
        if backend == "onnx":
            from reranker.preparation.retrievers.onnx_encoder import OnnxEncoder

            self.onnx = OnnxEncoder(self.model, self.tokenizer, self.pooling, normalize, self.device.type)
            self.model = None  # the graph holds the weights now
        else:
            self.model.to(self.device, dtype=self.dtype).eval()
        limit = self.tokenizer.model_max_length
        self.max_length = min(max_length, limit) if limit and limit < 1_000_000 else max_length
        self.normalize = normalize
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], prefix: str = "", progress: Progress | None = None) -> np.ndarray:
        """Embeddings ``[N, D]`` (float32) of ``prefix + text`` for each text; ``progress`` counts the texts."""
        tokens = self.tokenizer(
            [prefix + text for text in texts], truncation=True, max_length=self.max_length
        )
        names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in tokens]
        # Longest first: the first batch shows at once whether the largest batch fits in memory.
        order = sorted(range(len(texts)), key=lambda i: -len(tokens["input_ids"][i]))
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer.pad(
                {name: [tokens[name][i] for i in rows] for name in names}, return_tensors="pt"
            )
            output[rows] = self.embed_batch(batch).numpy()
            if progress is not None:
                progress.update(len(rows))
        return output

    @torch.inference_mode()
    def embed_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and normalised) embeddings ``[B, D]`` of one padded batch, float32 on the CPU."""
        if self.onnx is not None:
            return self.onnx(batch)
        batch = {name: value.to(self.device) for name, value in batch.items()}
        hidden = self.model(**batch).last_hidden_state.float()  # [B, L, D]
        return pool(hidden, batch["attention_mask"], self.pooling, self.normalize).cpu()
