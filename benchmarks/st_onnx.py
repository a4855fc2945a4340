"""sentence-transformers' own ONNX files for a model folder: ``st_onnx.py FOLDER`` (under ``.venv-compat``).

``CrossEncoder(FOLDER, backend="onnx")`` exports the float32 graph with Optimum ONNX when the folder has
none, and ``export_dynamic_quantized_onnx_model`` writes its int8 file with the configuration its
documentation names for this CPU (``avx512_vnni``, ``avx512``, ``avx2`` or ``arm64``):
``onnx/model_qint8_avx512_vnni.onnx``, ``onnx/model_quint8_avx2.onnx``, ...
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from sentence_transformers import CrossEncoder, export_dynamic_quantized_onnx_model


def cpu_configuration() -> str:
    """The quantisation configuration of sentence-transformers that fits this CPU."""
    if platform.machine() in ("arm64", "aarch64"):
        return "arm64"
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def main() -> None:
    folder = sys.argv[1]
    encoder = CrossEncoder(folder, backend="onnx", device="cpu")
    encoder.save_pretrained(folder)
    export_dynamic_quantized_onnx_model(encoder, cpu_configuration(), folder)


if __name__ == "__main__":
    main()
