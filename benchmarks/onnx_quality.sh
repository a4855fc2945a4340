#!/usr/bin/env bash
# Does int8 ONNX rank as float32 does? From the project root: benchmarks/onnx_quality.sh
# Trains multilingual-e5-small on the KorQuAD split of experiments/dense_first_stage (BM25-mined triplets,
# experiment=dense_first_stage, seed 42), exports it with float32 and int8 ONNX files, and evaluates the three
# on the same EVAL_QUERIES (default 1000) held-out questions x BM25 top 10, with paired tests of each ONNX row
# against torch: a loss of 0.005 MRR@10 needs about a thousand questions to be told from noise.
# Derived files go to benchmarks/work/onnx-quality/ (git-ignored); the report (ids, ranks, metrics, no text)
# to benchmarks/results/onnx_quality/.
# Needs the `onnx` extra and ../shared (SHARED=...; ME5=DIR reuses a built multilingual-e5-small).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
shared=${SHARED:-../shared}
work=benchmarks/work/onnx-quality
me5=${ME5:-benchmarks/work/me5-small}
eval_queries=${EVAL_QUERIES:-1000}
mkdir -p "$work"
case $PYTHON in */*) PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON") ;; esac  # convert.sh runs elsewhere
[ -f "$me5/model.safetensors" ] || "$shared/tools/me5-small/convert.sh" "$me5" "$PYTHON"

# The split and triplets of experiments/dense_first_stage/data.sh (BM25 side), and the BM25 top 10 of the
# evaluation questions.
data=$work/korquad-$eval_queries
[ -f "$data/train.jsonl" ] ||
  $PYTHON -m reranker.prepare squad "$shared/data/korquad/KorQuAD_v1.0_dev.json" --out "$data" \
    --sentences-per-passage 2 --eval-fraction 0.3 --val-fraction 0.05 --val-candidates 10 --max-val-queries 48 \
    --max-eval-queries "$eval_queries" --num-random-negatives 3 --num-hard-negatives 4 --hard-negative-window 3 50 --seed 42
[ -s "$data/candidates_bm25_top10.jsonl" ] ||
  $PYTHON -m reranker.prepare candidates --queries "$data/eval/queries.jsonl" --corpus "$data/eval/corpus.jsonl" \
    --out "$data/candidates_bm25_top10.jsonl" --top-k 10 >"$data/first_stage_bm25_top10.json"

run=$data/run
[ -f "$run/metrics.json" ] ||
  $PYTHON -m reranker.train experiment=dense_first_stage model.model_name_or_path="$me5" \
    data.train_files="$data/train.jsonl" data.val_files="$data/val.jsonl" seed=42 task_name=onnx_quality \
    hydra.run.dir="$run" callbacks.progress_bar=null
[ -f "$run/export/onnx/model_qint8_quantized.onnx" ] || $PYTHON -m reranker.export "$run/export" --onnx --quantize int8

$PYTHON -m reranker.evaluate "$data/candidates_bm25_top10.jsonl" --corpus "$data/eval/corpus.jsonl" \
  --model "torch=$run/export" --model "onnx=$run/export/onnx/model.onnx" \
  --model "int8=$run/export/onnx/model_qint8_quantized.onnx" --compare torch onnx --compare torch int8 \
  --fusion none --batch-size 32 --out benchmarks/results/onnx_quality
