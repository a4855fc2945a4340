"""Build what the benchmarks share, once, under ``benchmarks/work/`` (ignored by git).

``python benchmarks/setup.py`` writes, for each workload:
- ``models/<workload>/``: the base model with a one-logit classification head initialised from seed 0 and
  saved, so every system starts from exactly the same weights (a head left to each loader would be drawn
  afresh by each);
- ``data/<workload>/train.jsonl``: triplets ``{"query", "pos": [1], "neg": [3]}`` (group 4) that every
  system reads;
- ``data/<workload>/pairs.jsonl``: 3,000 ``[query, passage]`` pairs for the scoring benchmark;
- the ONNX files of the scoring benchmark: ours in ``models/<workload>/onnx/`` (``reranker export FOLDER
  --onnx --quantize int8``), sentence-transformers' own (its Optimum export and its int8 quantisation for this
  CPU, under ``.venv-compat``: ``st_onnx.py``) in a copy of the weights, ``models/<workload>-st/``.

Workloads: ``korean`` (KorQuAD 1.0 dev, passages of 2 sentences as ``reranker.prepare squad
--sentences-per-passage 2`` writes them, multilingual-e5-small) and ``english`` (the MS MARCO sample,
one gold passage and 3 random corpus passages per query, the demo model all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

from common import HERE, ME5_SMALL, PYTHONS, SHARED, WORK, worker_env

NUM_PAIRS = 3000


def build_model(base: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if (out / "config.json").is_file():
        return
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    portable_tokenizer_class(out)


# By the vocabulary's kind in tokenizer.json (multilingual-e5-small is a BERT with XLM-R's Unigram vocabulary).
TOKENIZER_CLASSES = {"Unigram": "XLMRobertaTokenizer", "WordPiece": "BertTokenizer"}


def portable_tokenizer_class(folder: Path) -> None:
    """transformers 5 names a tokenizer.json-only tokenizer ``TokenizersBackend``, a class transformers 4
    (FlagEmbedding's) does not know. Both know the model's own class, which also adds the pair's special
    tokens when FlagEmbedding joins separately tokenised texts (the generic fast class adds none)."""
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    vocabulary = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["type"]
    if config.get("tokenizer_class") in ("TokenizersBackend", "PreTrainedTokenizerFast", "BertTokenizer"):
        config["tokenizer_class"] = TOKENIZER_CLASSES[vocabulary]
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def english_triplets(out: Path, seed: int = 0) -> None:
    import pandas as pd

    corpus = pd.read_parquet(SHARED / "data" / "msmarco-en-sample" / "msmarco_corpus.parquet")
    qa = pd.read_parquet(SHARED / "data" / "msmarco-en-sample" / "msmarco_qa.parquet")
    text = dict(zip(corpus["doc_id"], corpus["contents"], strict=True))
    ids = list(text)
    rng = random.Random(seed)
    with (out / "train.jsonl").open("w", encoding="utf-8") as file:
        for query, gold in zip(qa["query"], qa["retrieval_gt"], strict=True):
            golds = {doc for group in gold for doc in group}
            negatives = rng.sample([doc for doc in ids if doc not in golds], 3)
            record = {
                "query": query,
                "pos": [text[sorted(golds)[0]]],
                "neg": [text[doc] for doc in negatives],
            }
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def korean_triplets(out: Path) -> None:
    prepared = WORK / "prepared-korquad"
    if not (prepared / "train.jsonl").is_file():
        command = [
            sys.executable,
            "-m",
            "reranker.prepare",
            "squad",
            str(SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json"),
        ]
        command += ["--sentences-per-passage", "2", "--out", str(prepared)]
        subprocess.run(command, check=True)
    shutil.copy(prepared / "train.jsonl", out / "train.jsonl")


def pairs_from_triplets(folder: Path, count: int = NUM_PAIRS) -> None:
    pairs = []
    with (folder / "train.jsonl").open(encoding="utf-8") as file:
        for line in file:
            record = json.loads(line)
            pairs += [[record["query"], passage] for passage in record["pos"] + record["neg"]]
            if len(pairs) >= count:
                break
    with (folder / "pairs.jsonl").open("w", encoding="utf-8") as file:
        for pair in pairs[:count]:
            file.write(json.dumps(pair, ensure_ascii=False) + "\n")


def build_onnx(folder: Path) -> None:
    """Our ONNX files in the folder, sentence-transformers' in a copy of its weights (``FOLDER-st``)."""
    if not (folder / "onnx" / "model_qint8_quantized.onnx").is_file():
        command = [sys.executable, "-m", "reranker.export", str(folder), "--onnx", "--quantize", "int8"]
        subprocess.run(command, check=True)
    copy = folder.with_name(f"{folder.name}-st")
    if not list(copy.glob("onnx/model_*int8_*.onnx")):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("onnx", "README.md", "reranker.json"))
        command = [PYTHONS["FlagEmbedding"], str(HERE / "st_onnx.py"), str(copy)]
        subprocess.run(command, check=True, env=worker_env())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", nargs="+", choices=("korean", "english"), default=["korean", "english"]
    )
    parser.add_argument(
        "--no-onnx", action="store_true", help="skip the ONNX files (training benchmarks only)"
    )
    args = parser.parse_args()
    from reranker.model.loading import packaged_model_path

    if "korean" in args.workloads and not (ME5_SMALL / "model.safetensors").is_file():
        convert = SHARED / "tools" / "me5-small" / "convert.sh"
        subprocess.run([str(convert), str(ME5_SMALL), sys.executable], check=True)
    bases = {"korean": str(ME5_SMALL), "english": packaged_model_path()}
    builders = {"korean": korean_triplets, "english": english_triplets}
    for workload, base in bases.items():
        if workload not in args.workloads:
            continue
        data = WORK / "data" / workload
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "train.jsonl").is_file():
            builders[workload](data)
        pairs_from_triplets(data)
        build_model(base, WORK / "models" / workload)
        portable_tokenizer_class(WORK / "models" / workload)
        if not args.no_onnx:
            build_onnx(WORK / "models" / workload)
        print(f"{workload}: {data} and {WORK / 'models' / workload}")


if __name__ == "__main__":
    main()
