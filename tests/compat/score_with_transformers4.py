"""Run by the transformers 4.x environment (``.venv-compat``, see the Makefile) on an exported folder.

``python score_with_transformers4.py PAIRS_JSON FOLDER...`` prints, as JSON, the scores of the pairs
by FlagEmbedding's ``FlagReranker`` (raw and normalised), by plain transformers 4.x and by
``reranker.Reranker`` running on transformers 4.x, for each folder. FlagEmbedding 1.4.2 does not import
under transformers 5.
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from FlagEmbedding import FlagReranker
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker import Reranker


def recorded_lengths(folder: str) -> dict[str, int]:
    """The lengths of the folder's ``reranker.json``, which FlagReranker must be given (512 without)."""
    path = Path(folder) / "reranker.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    lengths = {"max_length": record.get("max_length") or 512}
    if record.get("query_max_length"):
        lengths["query_max_length"] = record["query_max_length"]
    return lengths


def scores(folder: str, pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
    flag = FlagReranker(folder, use_fp16=False, devices="cpu")
    lengths = recorded_lengths(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    # No max_length: the tokenizer's model_max_length, which an export sets to the recorded one.
    features = tokenizer([list(pair) for pair in pairs], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        plain = model(**features).logits.view(-1).float().tolist()
    return {
        "flag": [float(score) for score in flag.compute_score(pairs, **lengths)],
        "flag_normalized": [float(score) for score in flag.compute_score(pairs, **lengths, normalize=True)],
        "plain": plain,
        "reranker": Reranker(folder, device="cpu").score(pairs),
    }


def main(pairs_file: str, folders: list[str]) -> None:
    with open(pairs_file, encoding="utf-8") as file:
        pairs = [tuple(pair) for pair in json.load(file)]
    result = {folder: scores(folder, pairs) for folder in folders}
    print(json.dumps({"transformers": transformers.__version__, "folders": result}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
