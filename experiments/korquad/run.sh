#!/usr/bin/env bash
# Regenerate the KorQuAD experiment from the project root: experiments/korquad/run.sh
# Needs the `experiments` extra (matplotlib, kiwipiepy) and ../shared (KorQuAD dev, the me5-small tool).
# Derived data, models and runs go to experiments/korquad/work/ (git-ignored); the report files
# (results.*, bm25_tokenizers.md, val_mrr.png, configs/) are written next to this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
shared=${SHARED:-../shared}
here=experiments/korquad
work=$here/work
mkdir -p "$work" "$here/configs"

# 1. KorQuAD dev → title-disjoint train / val / eval, 2-sentence passages.
$PYTHON -m reranker.prepare squad "$shared/data/korquad/KorQuAD_v1.0_dev.json" --out "$work/data" \
  --sentences-per-passage 2 --eval-fraction 0.3 --val-fraction 0.05 --val-candidates 10 --max-val-queries 48 \
  --max-eval-queries 200 --num-random-negatives 3 --num-hard-negatives 4 --hard-negative-window 3 50 --seed 42

# 2. BM25 top-20 over the eval corpus with each tokenisation (the comparison in the report); then the
#    reranked candidate lists: bigram top-10 (10 pairs a query keeps CPU scoring of four models affordable).
{
  echo "| tokenizer | queries | corpus | recall@20 | mrr@10 | gold forced in |"
  echo "|---|---|---|---|---|---|"
  for tokenizer in whitespace bigram kiwi; do
    $PYTHON -m reranker.prepare candidates --queries "$work/data/eval/queries.jsonl" \
      --corpus "$work/data/eval/corpus.jsonl" --out "$work/data/eval/candidates_$tokenizer.jsonl" \
      --top-k 20 --bm25-tokenizer "$tokenizer" |
      $PYTHON -c 'import json, sys; print("| %(tokenizer)s | %(queries)d | %(corpus)d | %(recall@20).4f | %(mrr@10).4f | %(forced)d |" % json.load(sys.stdin))'
  done
} >"$here/bm25_tokenizers.md"
$PYTHON -m reranker.prepare candidates --queries "$work/data/eval/queries.jsonl" \
  --corpus "$work/data/eval/corpus.jsonl" --out "$work/data/eval/candidates_top10.jsonl" --top-k 10 --bm25-tokenizer bigram

# 3. Base models: the embedded all-MiniLM-L6-v2 and multilingual-e5-small (built offline).
minilm=$($PYTHON -c 'from reranker.model.loading import packaged_model_path; print(packaged_model_path())')
[ -f "$work/me5-small/model.safetensors" ] || "$shared/tools/me5-small/convert.sh" "$work/me5-small" "$PYTHON"

# 4. Fine-tune each on the train side (CPU: 16 steps of 8 queries x 4 passages, validation every 8).
$here/train_one.sh me5 korquad_me5 model.model_name_or_path="$work/me5-small"
$here/train_one.sh minilm korquad_minilm
# The same me5-small recipe, four times as long (run when the machine was free).
$here/train_one.sh me5_long korquad_me5_long model.model_name_or_path="$work/me5-small"
for run in me5 minilm me5_long; do
  cp "$work/runs/$run/.hydra/config.yaml" "$here/configs/$run.yaml"
  cp "$work/runs/$run/.hydra/overrides.yaml" "$here/configs/${run}_overrides.yaml"
done

# 5. Evaluate on the eval side: first stage, each model zero-shot and fine-tuned, paired tests, slices.
$PYTHON -m reranker.evaluate "$work/data/eval/candidates_top10.jsonl" --corpus "$work/data/eval/corpus.jsonl" \
  --model "MiniLM zero-shot=$minilm" --model "MiniLM fine-tuned=$work/runs/minilm/export" \
  --model "me5-small zero-shot=$work/me5-small" --model "me5-small fine-tuned=$work/runs/me5/export" \
  --model "me5-small fine-tuned x4=$work/runs/me5_long/export" \
  --compare "without reranker" "me5-small fine-tuned" --compare "me5-small zero-shot" "me5-small fine-tuned" \
  --compare "without reranker" "me5-small fine-tuned x4" --compare "me5-small fine-tuned" "me5-small fine-tuned x4" \
  --compare "without reranker" "MiniLM fine-tuned" --compare "MiniLM zero-shot" "MiniLM fine-tuned" \
  --max-length 192 --batch-size 32 --cache "$work/scores" --out "$here"

# 6. Validation MRR@10 over training steps.
$PYTHON $here/plot.py "$here/val_mrr.png" "me5-small=$work/runs/me5/csv/metrics.csv" \
  "me5-small x4=$work/runs/me5_long/csv/metrics.csv" \
  "all-MiniLM-L6-v2=$work/runs/minilm/csv/metrics.csv"
