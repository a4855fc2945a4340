"""One scoring run of one system, in its own process: ``score_worker.py SYSTEM MODEL PAIRS OUT``.

Prints one JSON line: pairs/s over the timed pass (after one warm-up pass over the first 256 pairs),
peak RSS, and writes the raw logits to ``OUT``. Runs under either virtual environment (FlagEmbedding and
sentence-transformers' ONNX backend need transformers 4), so it imports only what its system needs.

ONNX systems read the files ``setup.py`` writes: ours in ``MODEL/onnx/`` (``reranker export MODEL --onnx
--quantize int8``), sentence-transformers' own export and int8 quantisation in ``MODEL-st/onnx/``.
"""

from __future__ import annotations

import json
import resource
import sys
import time

MAX_LENGTH = 256
BATCH_SIZE = 64


def scorer(system: str, model: str):
    if system in ("ours", "ours-onnx", "ours-onnx-int8"):
        # The front end every command scores through (one process, no cache file); the model loads in the
        # warm-up pass. ONNX: the export's file, run by ONNX Runtime on the CPU.
        from reranker.model.onnx_backend import ONNX_FILE, ONNX_FOLDER, QUANTIZED_FILE
        from reranker.scoring.pairs import PairScoring

        onnx_file = {"ours-onnx": ONNX_FILE, "ours-onnx-int8": QUANTIZED_FILE}.get(system)
        path = f"{model}/{ONNX_FOLDER}/{onnx_file}" if onnx_file else model
        scoring = PairScoring(max_length=MAX_LENGTH, batch_size=BATCH_SIZE, device="cpu")
        return lambda pairs: scoring(path, pairs)
    if system == "sentence-transformers-onnx-int8":
        from pathlib import Path

        import torch
        from sentence_transformers import CrossEncoder

        (int8_file,) = Path(f"{model}-st").glob("onnx/model_*int8_*.onnx")  # st_onnx.py wrote one
        encoder = CrossEncoder(f"{model}-st", max_length=MAX_LENGTH, device="cpu", backend="onnx",
                               model_kwargs={"file_name": f"onnx/{int8_file.name}"})  # fmt: skip
        return lambda pairs: encoder.predict(
            pairs, batch_size=BATCH_SIZE, activation_fn=torch.nn.Identity()
        ).tolist()
    if system == "sentence-transformers":
        import torch
        from sentence_transformers import CrossEncoder

        encoder = CrossEncoder(model, max_length=MAX_LENGTH, device="cpu")
        return lambda pairs: encoder.predict(
            pairs, batch_size=BATCH_SIZE, activation_fn=torch.nn.Identity()
        ).tolist()
    if system == "FlagEmbedding":
        from FlagEmbedding import FlagReranker

        reranker = FlagReranker(model, use_fp16=False, devices=["cpu"])
        return lambda pairs: reranker.compute_score(pairs, batch_size=BATCH_SIZE, max_length=MAX_LENGTH)
    raise SystemExit(f"unknown system {system!r}")


def main() -> None:
    system, model, pairs_path, out = sys.argv[1:5]
    with open(pairs_path, encoding="utf-8") as file:
        pairs = [tuple(json.loads(line)) for line in file]
    score = scorer(system, model)
    score(pairs[:256])
    start = time.perf_counter()
    scores = [float(value) for value in score(pairs)]
    seconds = time.perf_counter() - start
    with open(out, "w") as file:
        json.dump(scores, file)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"system": system, "pairs_per_s": len(pairs) / seconds, "peak_rss_gb": peak_rss_gb}))


if __name__ == "__main__":
    main()
