"""Write the ONNX files of an encoder cross-encoder inside its export folder (``onnx/``, see
:mod:`reranker.model.onnx_backend` for the layout), float32 and, asked for, int8.

``export_onnx(folder, quantize="int8")`` adds them to an existing export (``reranker export FOLDER --onnx
--quantize int8``); ``reranker export CHECKPOINT --out DIR --onnx`` writes them with the export.
The graph (:mod:`reranker.model.onnx_graph`) is traced by ``torch.onnx.export`` with the model's plain (eager)
attention, batch and sequence axes dynamic, then fused by ONNX Runtime's transformer optimizer (one ``Attention`` node per layer, layer
norms joined to their residual additions, GELU to its bias: ONNX Runtime's own operators, which its CPU and
CUDA providers run). Every graph is checked against the torch model's logits before it is kept: a fused graph
that is not close enough gives way to the unfused one, with the reason recorded in ``fingerprint.json``. int8
is ONNX Runtime's dynamic quantisation of the fused graph (weights int8 per output channel in 7 bits,
activations quantised at run time; the fused attention becomes its quantised form too).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reranker.core.atomic import replace_folder, write_atomic
from reranker.core.errors import InputError
from reranker.model.contract import read_contract
from reranker.model.kinds import ModelKind
from reranker.model.loading import load_tokenizer, resolve_model_path, set_padding_token
from reranker.model.onnx_backend import (
    FINGERPRINT_FILE,
    ONNX_FILE,
    ONNX_FOLDER,
    OUTPUT_NAME,
    QUANTIZED_FILE,
    check_onnx_kind,
    weight_files,
    write_fingerprint,
)
from reranker.model.onnx_graph import (
    EXTERNAL_DATA_BYTES,
    MAX_EXPORT_ERROR,
    fuse_graph,
    graph_difference,
    quiet,
    trace_graph,
)

QUANTIZATIONS = ("int8",)
# Pairs of different lengths: the traced batch and sequence sizes must be at least 2 and differ, so the
# exporter keeps both axes dynamic rather than specialising them to a constant.
EXAMPLE_QUERIES = ["a short query", "a somewhat longer query with more words in it"]
EXAMPLE_PASSAGES = ["a passage about one thing and another", "short"]


def check_quantize(quantize: str | None) -> None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InputError(f"quantize must be None or one of {', '.join(QUANTIZATIONS)}; got {quantize!r}")


def write_onnx(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    kind: ModelKind,
    folder: str | Path,
    quantize: str | None = None,
) -> list[Path]:
    """Write ``folder/onnx/``: ``model.onnx`` (float32), with ``quantize="int8"`` also
    ``model_qint8_quantized.onnx``, and ``fingerprint.json``. The folder's weights must be written already:
    the fingerprint records them. Returns the ONNX files written."""
    folder = Path(folder)
    check_onnx_kind(kind, str(folder))
    check_quantize(quantize)
    if not weight_files(folder):
        raise InputError(f"{folder} holds no *.safetensors weights: the ONNX fingerprint records them")
    onnx_folder = folder / ONNX_FOLDER
    onnx_folder.mkdir(exist_ok=True)
    model = model.to("cpu", torch.float32).eval()
    features = dict(tokenizer(EXAMPLE_QUERIES, EXAMPLE_PASSAGES, padding=True, return_tensors="pt"))
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    path = onnx_folder / ONNX_FILE
    details: dict = {"torch": torch.__version__}
    details["graph"] = trace_graph(model, features, path, large)
    _check_logits(model, features, path)
    details["graph"]["fused"] = fuse_graph(model, features, path, large, check=_check_logits)
    written = [path]
    if quantize == "int8":
        written.append(_quantize_int8(path, onnx_folder / QUANTIZED_FILE, large))
        details["quantization"] = {
            QUANTIZED_FILE: "dynamic, int8 weights per channel, reduced range (onnxruntime)"
        }
    write_fingerprint(folder, [file.name for file in written], details)
    return written


def _check_logits(model: PreTrainedModel, features: dict[str, torch.Tensor], path: Path) -> None:
    """The float32 graph gives the torch model's logits on a batch other than the traced one."""
    error = graph_difference(model, features, path, OUTPUT_NAME)
    if not error <= MAX_EXPORT_ERROR:
        raise InputError(
            f"{path}: the ONNX graph does not reproduce the model's logits (largest difference {error:.2g}); "
            f"score this model with backend='torch'"
        )


def _quantize_int8(source: Path, target: Path, large: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime's shape inference saves a scratch model into the working directory: keep it out of
    # the user's folder.
    source, target = source.resolve(), target.resolve()
    with quiet(), tempfile.TemporaryDirectory(prefix="reranker-onnx-") as scratch, contextlib.chdir(scratch):
        # Weights in 7 bits (reduce_range): CPUs with AVX2 but no VNNI multiply uint8 activations by int8
        # weights in 16-bit sums that saturate at 8 bits; 7 bits cannot, so the file scores alike on every
        # x86 CPU.
        # A fused graph's operators (ONNX Runtime's own) have no type in ONNX shape inference: float.
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         use_external_data_format=large, extra_options={"DefaultTensorType": 1})  # fmt: skip
    return target


def export_onnx(folder: str | Path, quantize: str | None = None) -> list[Path]:
    """Add ONNX files to an export folder (replacing its ``onnx/``), from the weights in it.

    ``export_onnx("model/")`` writes float32, ``export_onnx("model/", quantize="int8")`` also int8. The
    files are written in a folder beside ``onnx/`` and moved into place at the end, so a failure leaves
    the previous ``onnx/`` (or none) as it was; the model card gains its ONNX paragraph.
    """
    check_quantize(quantize)
    folder = Path(resolve_model_path(str(folder)))
    if not folder.is_dir():
        raise InputError(f"{folder}: ONNX files are added to a local export folder")
    kind = read_contract(folder).kind
    check_onnx_kind(kind, str(folder))
    tokenizer = set_padding_token(load_tokenizer(str(folder)))
    model = kind.load_model(str(folder), tokenizer)
    staging = Path(tempfile.mkdtemp(prefix=".export-onnx-", dir=folder))
    try:
        # The staging folder sees the weights through links, so the fingerprint hashes the real files.
        for name in weight_files(folder):
            (staging / name).symlink_to((folder / name).resolve())  # a relative target would dangle
        written = write_onnx(model, tokenizer, kind, staging, quantize)
        replace_folder(staging / ONNX_FOLDER, folder / ONNX_FOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _add_card_section(folder, [file.name for file in written])
    return [folder / ONNX_FOLDER / file.name for file in written]


def onnx_card_section(files: list[str]) -> str:
    """The model card's ONNX paragraph, for the files written."""
    lines = [
        "",
        "## ONNX",
        "",
        f"`{ONNX_FOLDER}/` holds "
        + " and ".join(f"`{name}`" for name in files)
        + " (float32"
        + (
            ", and int8 weights by dynamic quantisation, close to but not equal to float32"
            if QUANTIZED_FILE in files
            else ""
        )
        + f") for ONNX Runtime; `{ONNX_FOLDER}/{FINGERPRINT_FILE}` records the weights they were written from,"
        " and files that no longer match them are refused. `Reranker` scores through them under this card's"
        " scoring contract (lengths, truncation), as through the weights:",
        "",
        "```python",
        "from reranker import Reranker",
        "from sentence_transformers import CrossEncoder",
        "",
        'Reranker(path, backend="onnx")  # onnx_file="' + QUANTIZED_FILE + '" for int8',
        'CrossEncoder(path, backend="onnx", model_kwargs={"file_name": "' + ONNX_FILE + '"})',
        "```",
        "",
    ]
    return "\n".join(lines)


def _add_card_section(folder: Path, files: list[str]) -> None:
    """Append (or replace) the ONNX paragraph of the folder's model card, when it has one."""
    card = folder / "README.md"
    if not card.is_file():
        return
    # An earlier ONNX paragraph (up to the next section) gives way to this one, at the end.
    text = re.sub(r"\n## ONNX\n.*?(?=\n## |\Z)", "", card.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = text.rstrip("\n") + "\n" + onnx_card_section(files)
    write_atomic(card, text)
