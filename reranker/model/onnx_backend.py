"""Score an encoder cross-encoder through ONNX Runtime: ``PairScorer(path, backend="onnx")``.

Only the forward pass changes: :class:`OnnxClassifier` stands where the torch model stands, so
tokenisation, truncation, batching and normalisation stay those of
:class:`~reranker.model.pair_scorer.PairScorer` under the model's scoring contract.

An export holds its ONNX files in the layout sentence-transformers' ``CrossEncoder(path, backend="onnx")``
loads (``model_kwargs={"file_name": QUANTIZED_FILE}`` for the int8 one):

- ``onnx/model.onnx``: float32;
- ``onnx/model_qint8_quantized.onnx``: int8 weights, dynamic quantisation (``--quantize int8``);
- ``onnx/fingerprint.json``: the sha256 of the weights and of each ONNX file when they were written, so
  ONNX files left over from other weights are refused rather than scored with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import cached_file

from reranker.core.errors import InputError
from reranker.model.kinds import EncoderClassifier, ModelKind

ONNX_FOLDER = "onnx"
ONNX_FILE = "model.onnx"
QUANTIZED_FILE = "model_qint8_quantized.onnx"
FINGERPRINT_FILE = "fingerprint.json"
FINGERPRINT_FORMAT = 1
OUTPUT_NAME = "logits"


def export_command(folder: str) -> str:
    """The command that writes a folder's ONNX files."""
    return f"reranker export {folder} --onnx [--quantize int8]"


def check_onnx_kind(kind: ModelKind, source: str) -> None:
    """ONNX covers encoder cross-encoders; a decoder kind is refused with what is supported."""
    if not isinstance(kind, EncoderClassifier):
        raise InputError(
            f"{source}: ONNX supports encoder cross-encoders only (model.kind form classifier without a "
            f"prompt); this model is a {type(kind).__name__}: score it with backend='torch'"
        )


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_files(folder: Path) -> list[str]:
    """The weight files of an export folder (one ``model.safetensors``, or its shards)."""
    return sorted(path.name for path in folder.glob("*.safetensors"))


def write_fingerprint(folder: Path, onnx_files: list[str], details: dict) -> Path:
    """``onnx/fingerprint.json``: the sha256 of the folder's weights and of its ONNX files, and ``details``."""
    record = {
        "format": FINGERPRINT_FORMAT,
        "weights": {name: sha256_of(folder / name) for name in weight_files(folder)},
        "onnx": {name: sha256_of(folder / ONNX_FOLDER / name) for name in onnx_files},
        **details,
    }
    path = folder / ONNX_FOLDER / FINGERPRINT_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def split_onnx_path(name_or_path: str) -> tuple[str, str] | None:
    """``EXPORT/onnx/FILE.onnx`` → ``(EXPORT, FILE.onnx)``: a path to one ONNX file of an export names the
    export and the file to run, so every command that takes a model path can take it. None for any other
    path."""
    if not name_or_path.endswith(".onnx"):
        return None
    path = Path(name_or_path)
    if path.parent.name != ONNX_FOLDER:
        raise InputError(
            f"{name_or_path}: an ONNX file is run from the {ONNX_FOLDER}/ folder of its export, beside the "
            f"weights it is checked against (EXPORT/{ONNX_FOLDER}/{ONNX_FILE})"
        )
    return str(path.parent.parent), path.name


def _resolve(name_or_path: str, relative: str) -> Path | None:
    """A file of a model folder or hub repository, or None when it has none."""
    try:
        found = cached_file(name_or_path, relative, _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None
    return Path(found) if found else None


def check_fingerprint(name_or_path: str, onnx_file: str) -> Path:
    """The path of ``onnx/<onnx_file>`` once its fingerprint matches the weights beside it.

    A missing file names the command that writes it; ONNX files written from other weights (the weights
    re-exported or changed since) or replaced since are refused.
    """
    onnx_path = _resolve(name_or_path, f"{ONNX_FOLDER}/{onnx_file}")
    if onnx_path is None:
        raise InputError(
            f"{name_or_path} has no {ONNX_FOLDER}/{onnx_file}: write it with `{export_command(name_or_path)}`"
        )
    record_path = _resolve(name_or_path, f"{ONNX_FOLDER}/{FINGERPRINT_FILE}")
    if record_path is None:
        raise InputError(
            f"{name_or_path} has no {ONNX_FOLDER}/{FINGERPRINT_FILE}, so its ONNX files cannot be checked "
            f"against its weights: write them again with `{export_command(name_or_path)}`"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        weights, onnx = dict(record["weights"]), dict(record["onnx"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise InputError(f"{record_path}: expected a JSON object with weights and onnx fields") from None
    stale = f"write them again with `{export_command(name_or_path)}`"
    folder = Path(name_or_path)
    if folder.is_dir() and weight_files(folder) != sorted(weights):
        raise InputError(
            f"{record_path}: field weights names {sorted(weights)}, the folder holds {weight_files(folder)}: "
            f"the ONNX files were written from other weights; {stale}"
        )
    for name, expected in weights.items():
        path = _resolve(name_or_path, name)
        if path is None or sha256_of(path) != expected:
            raise InputError(
                f"{record_path}: field weights.{name}: the weights changed after the ONNX files were "
                f"written (sha256 differs); {stale}"
            )
    if onnx.get(onnx_file) != sha256_of(onnx_path):
        raise InputError(
            f"{record_path}: field onnx.{onnx_file}: {onnx_path} is not the file written with these "
            f"weights (sha256 differs); {stale}"
        )
    return onnx_path


def onnx_session(path: str | Path, device: str = "cpu"):
    """An ONNX Runtime session of ``path`` on ``"cpu"`` or ``"cuda"`` (``"cuda"`` needs ``onnxruntime-gpu``)."""
    import onnxruntime as ort

    provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise InputError(
            f"device {device!r}: this onnxruntime has no {provider} "
            f"(available: {', '.join(ort.get_available_providers())}; pip install onnxruntime-gpu for CUDA)"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: graph optimisation notes are not the user's concern
    return ort.InferenceSession(str(path), options, providers=[provider])


class OnnxClassifier:
    """An ONNX sequence classifier called like the torch model: ``model(**features).logits`` ``[N, 1]``.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda"`` needs ``onnxruntime-gpu``).
    """

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.session = onnx_session(path, device)
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.path = Path(path)

    def __call__(self, **features: torch.Tensor) -> SequenceClassifierOutput:
        missing = [name for name in self.input_names if name not in features]
        if missing:
            raise InputError(
                f"{self.path} takes {', '.join(self.input_names)}; the tokenizer gives no {', '.join(missing)}"
            )
        inputs = {name: features[name].cpu().numpy() for name in self.input_names}
        (logits,) = self.session.run([OUTPUT_NAME], inputs)  # [N, 1]
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))


def load_onnx(name_or_path: str, kind: ModelKind, onnx_file: str | None, device: str) -> OnnxClassifier:
    """The checked ONNX model of an export folder or hub name (``onnx_file`` None: :data:`ONNX_FILE`)."""
    check_onnx_kind(kind, name_or_path)
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError:
        raise InputError("backend='onnx' needs onnxruntime: pip install 'reranker[onnx]'") from None
    return OnnxClassifier(check_fingerprint(name_or_path, onnx_file or ONNX_FILE), device)
