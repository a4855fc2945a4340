#!/usr/bin/env bash
# The fused rows of the KorQuAD experiment, from the project root: experiments/korquad/fusion.sh
# Needs run.sh's data preparation and the me5_long run in experiments/korquad/work/ (runs/me5_long/export).
# Writes fusion_cv/ (a by 5-fold cross-validation on the 200 held-out queries) and fusion_val/ (a tuned on
# the 48 validation queries) next to this script; fusion.md reports both.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
here=experiments/korquad
work=$here/work
data=$work/data
# Candidates with their BM25 scores (prepare candidates writes candidate_scores beside candidate_ids).
$PYTHON -m reranker.prepare candidates --queries "$data/eval/queries.jsonl" --corpus "$data/eval/corpus.jsonl" \
  --out "$data/eval/candidates_top10.jsonl" --top-k 10 --bm25-tokenizer bigram
common=("$data/eval/candidates_top10.jsonl" --corpus "$data/eval/corpus.jsonl"
  --model "me5-small fine-tuned=$work/runs/me5_long/export" --max-length 192 --batch-size 32 --cache "$work/scores")
$PYTHON -m reranker.evaluate "${common[@]}" --fusion-folds 5 --out "$here/fusion_cv"
# val.jsonl carries pos_first_stage/neg_first_stage (BM25 scores), written by prepare squad.
$PYTHON -m reranker.evaluate "${common[@]}" --fusion-val "$data/val.jsonl" --out "$here/fusion_val"
