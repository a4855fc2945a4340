#!/usr/bin/env bash
# The recipe on KorQuAD at CPU scale, from the project root: experiments/korquad_recipe/run.sh
# (a) group CE on BM25 negatives, (b) group CE on BM25 negatives filtered by a teacher, (c) distillation from
# the teacher on (b)'s negatives; the same student, data size and steps. Derived data, models and runs go
# to experiments/korquad_recipe/work/ (git-ignored); results.* are written next to this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
shared=${SHARED:-../shared}
here=experiments/korquad_recipe
work=$here/work
me5=${ME5:-$work/me5-small}
mkdir -p "$work"

# 1. The KorQuAD split of experiments/korquad (validation and evaluation sides), the train side as queries +
#    corpus for mining, and the evaluation candidates (BM25 top 10, bigrams).
$PYTHON -m reranker.prepare squad "$shared/data/korquad/KorQuAD_v1.0_dev.json" --out "$work/data" \
  --sentences-per-passage 2 --eval-fraction 0.3 --val-fraction 0.05 --val-candidates 10 --max-val-queries 48 \
  --max-eval-queries 200 --num-random-negatives 3 --num-hard-negatives 4 --hard-negative-window 3 50 --seed 42
$PYTHON $here/train_side.py "$shared/data/korquad/KorQuAD_v1.0_dev.json" "$work/data/train_side"
$PYTHON -m reranker.prepare candidates --queries "$work/data/eval/queries.jsonl" \
  --corpus "$work/data/eval/corpus.jsonl" --out "$work/data/eval/candidates_top10.jsonl" --top-k 10

# 2. Teacher: multilingual-e5-small, the 64-step recipe of experiments/korquad (its "x4" row); its best
#    checkpoint by val/mrr@10 is exported. Student: the same model cut to its first 4 layers.
[ -f "$me5/model.safetensors" ] || "$shared/tools/me5-small/convert.sh" "$me5" "$PYTHON"
teacher=${TEACHER:-$work/runs/teacher/export}
if [ ! -e "$teacher" ]; then
  experiments/korquad/train_one.sh teacher korquad_me5_long model.model_name_or_path="$me5" \
    data.train_files="$work/data/train.jsonl" data.val_files="$work/data/val.jsonl" hydra.run.dir="$work/runs/teacher"
fi
$PYTHON $here/make_student.py "$me5" "$work/me5-small-l4" 4

# 3. Training data: 256 train-side questions, 2 negatives each from BM25 ranks 3-50 and 1 random one (a);
#    the same draw with BM25 candidates scoring within 1.0 logit of the positive replaced by the next ones
#    (b); (b) with teacher scores (c). The teacher cache makes (c) reuse the filter's scores.
mine=(--queries "$work/data/train_side/queries.jsonl" --corpus "$work/data/train_side/corpus.jsonl"
  --window 3 50 --num-hard-negatives 2 --num-random-negatives 1 --max-queries 256 --seed 42)
$PYTHON -m reranker.prepare mine "${mine[@]}" --out "$work/data/bm25.jsonl" >"$work/mine_bm25.json"
$PYTHON -m reranker.prepare mine "${mine[@]}" --out "$work/data/filtered.jsonl" --filter-model "$teacher" \
  --filter-margin 1.0 --max-length 128 --batch-size 32 --cache "$work/teacher.sqlite" >"$work/mine_filtered.json"
$PYTHON -m reranker.prepare teacher "$work/data/filtered.jsonl" --model "$teacher" \
  --out "$work/data/filtered_teacher.jsonl" --max-length 128 --batch-size 32 --cache "$work/teacher.sqlite"

# 4. Students: 32 steps of 8 questions x 4 passages each (one epoch of the 256 questions).
$here/train_student.sh bm25 recipe_student "$work/data/bm25.jsonl"
$here/train_student.sh filtered recipe_student "$work/data/filtered.jsonl"
$here/train_student.sh distill recipe_student_distill "$work/data/filtered_teacher.jsonl"
for run in bm25 filtered distill; do
  mkdir -p "$here/configs"
  cp "$work/runs/$run/.hydra/overrides.yaml" "$here/configs/${run}_overrides.yaml"
done

# 5. Evaluate on the held-out articles: BM25, the teacher and the three students, with paired tests.
$PYTHON -m reranker.evaluate "$work/data/eval/candidates_top10.jsonl" --corpus "$work/data/eval/corpus.jsonl" \
  --model "teacher=$teacher" --model "(a) CE, BM25 negatives=$work/runs/bm25/export" \
  --model "(b) CE, filtered negatives=$work/runs/filtered/export" \
  --model "(c) distilled=$work/runs/distill/export" \
  --compare "without reranker" "(a) CE, BM25 negatives" --compare "without reranker" "(b) CE, filtered negatives" \
  --compare "without reranker" "(c) distilled" --compare "(a) CE, BM25 negatives" "(b) CE, filtered negatives" \
  --compare "(b) CE, filtered negatives" "(c) distilled" --compare "(a) CE, BM25 negatives" "(c) distilled" \
  --max-length 128 --batch-size 32 --cache "$work/scores" --out "$here"
