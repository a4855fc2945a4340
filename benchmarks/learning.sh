#!/usr/bin/env bash
# Does a model learn as well with this checkout's training as with another's? benchmarks/learning.sh BEFORE_ROOT
#
# Runs the KorQuAD "x4" recipe of experiments/korquad (multilingual-e5-small, group CE, groups of 4,
# 8 questions a step, lr 1e-4, 64 steps, validation every 16, best checkpoint exported) once with the code
# of BEFORE_ROOT (another checkout, e.g. `git worktree add ../before <commit>`) and once with this one,
# same data and seed, then evaluates both exports on the same 200 held-out questions x BM25 top 10.
# Needs ../shared (KorQuAD dev) and multilingual-e5-small at $ME5 (default benchmarks/work/me5-small, as
# benchmarks/setup.py builds it).
# SEED (default 42) seeds both runs. Writes under benchmarks/work/learning/ (git-ignored); prints the
# evaluation table and paired tests.
set -euo pipefail
before=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
after=$PWD
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
shared=${SHARED:-$after/../shared}
me5=${ME5:-$after/benchmarks/work/me5-small}
seed=${SEED:-42}
data=$after/benchmarks/work/learning/data
work=$after/benchmarks/work/learning/seed$seed
mkdir -p "$work"

if [ ! -f "$data/eval/candidates_top10.jsonl" ]; then
  PYTHONPATH=$after $PYTHON -m reranker.prepare squad "$shared/data/korquad/KorQuAD_v1.0_dev.json" --out "$data" \
    --sentences-per-passage 2 --eval-fraction 0.3 --val-fraction 0.05 --val-candidates 10 --max-val-queries 48 \
    --max-eval-queries 200 --num-random-negatives 3 --num-hard-negatives 4 --hard-negative-window 3 50 --seed 42
  PYTHONPATH=$after $PYTHON -m reranker.prepare candidates --queries "$data/eval/queries.jsonl" \
    --corpus "$data/eval/corpus.jsonl" --out "$data/eval/candidates_top10.jsonl" --top-k 10 --bm25-tokenizer bigram
fi

for side in before after; do
  root=${!side}
  [ -d "$work/$side/export" ] && continue
  (cd "$root" && PYTHONPATH=$root $PYTHON -m reranker.train model=multilingual_e5_small \
    model.model_name_or_path="$me5" data.train_files="$data/train.jsonl" data.val_files="$data/val.jsonl" \
    data.group_size=4 data.batch_size=8 data.val_batch_size=16 data.max_length=128 data.num_workers=1 \
    model.lr=1e-4 trainer.max_epochs=1 trainer.max_steps=64 trainer.val_check_interval=16 \
    trainer.log_every_n_steps=2 seed=$seed validate_before_training=false task_name="learning_$side" \
    hydra.run.dir="$work/$side" callbacks.progress_bar=null)
done

PYTHONPATH=$after $PYTHON -m reranker.evaluate "$data/eval/candidates_top10.jsonl" --corpus "$data/eval/corpus.jsonl" \
  --model "before=$work/before/export" --model "after=$work/after/export" \
  --compare "without reranker" "before" --compare "without reranker" "after" --compare "before" "after" \
  --max-length 192 --batch-size 32 --out "$work/eval"
