#!/usr/bin/env bash
# The objectives study from the project root: experiments/objectives/run.sh (README: the question, the arms).
# Data: experiments/dense_first_stage/data.sh (the `dense` extra and ../shared; SHARED=..., ME5=DIR as there),
# or DATA=DIR holding the same layout (then nothing is built). Runs, teacher-scored data and score caches go
# to WORK (default experiments/objectives/work/, git-ignored); results/, leaderboard/, tables.md,
# results.json and the plots to OUT (default next to this script). Skips finished trainings; a training
# that ended without metrics (diverged) gets a FAILED file and is not retried (delete it to retry).
# Sizing: SEEDS ("1 2 3"), STEPS (conf/experiment/objectives.yaml's max_steps), ARMS (all below),
# GROUP_SIZES ("4 16", for the best arm; "" for none), TEACHER_FACTOR (4), MINED (bm25: whose mined
# triplets train), OVERRIDES (extra Hydra overrides for every training, e.g. for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
here=experiments/objectives
work=${WORK:-$here/work}
out=${OUT:-$here}
if [ -z "${DATA:-}" ]; then experiments/dense_first_stage/data.sh; fi
data=${DATA:-experiments/dense_first_stage/work}
me5=${ME5:-experiments/dense_first_stage/work/me5-small}
sets="korquad msmarco"
seeds=${SEEDS:-1 2 3}
steps=${STEPS:-$(sed -n 's/^  max_steps: //p' conf/experiment/objectives.yaml)}
mined=${MINED:-bm25}
group_sizes=${GROUP_SIZES-4 16}
teacher_factor=${TEACHER_FACTOR:-4}
teacher_seed=42
read -r -a extra <<<"${OVERRIDES:-}"

# Each arm's Hydra overrides on top of experiment=objectives. group_ce at temperature 1.0 is the plain arm;
# the best of 0.3 / 0.5 / 1.0 on validation is the "best temperature" arm.
declare -A arm_overrides=(
  [group_ce]="loss=group_ce"
  [group_ce_t0.3]="loss=group_ce loss.temperature=0.3"
  [group_ce_t0.5]="loss=group_ce loss.temperature=0.5"
  [listnet]="loss=listnet"
  [lambdaloss]="loss=lambdaloss"
  [bce]="loss=bce"
  [distill_kl]="loss=distill_kl"
  [margin_mse]="loss=margin_mse"
)
arms=${ARMS:-group_ce group_ce_t0.3 group_ce_t0.5 listnet lambdaloss bce distill_kl margin_mse}
for arm in $arms; do
  [ -n "${arm_overrides[$arm]:-}" ] || { echo "error: ARMS: unknown arm $arm (known: ${!arm_overrides[*]})" >&2; exit 2; }
done
read -r -a arm_list <<<"$arms"
read -r -a seed_list <<<"$seeds"
read -r -a set_list <<<"$sets"
estimate() {
  # shellcheck disable=SC2086
  $PYTHON $here/report.py estimate "$work" --train-sets "${#set_list[@]}" --seeds "${#seed_list[@]}" \
    --arms "${#arm_list[@]}" --steps "$steps" --teacher-factor "$teacher_factor" --group-sizes $group_sizes
}
common=(experiment=objectives model.model_name_or_path="$me5" callbacks.progress_bar=null)
eval_corpus() { if [ "$1" = korquad ]; then echo "$data/korquad/bm25/eval/corpus.jsonl"; else echo "$data/msmarco/corpus.jsonl"; fi; }
mkdir -p "$work" "$out"
estimate

# 1. The teacher of distill_kl and margin_mse: the plain arm (group_ce) trained TEACHER_FACTOR times longer
#    on the same triplets, one seed per training set. Its scores are added to the triplets, and every arm
#    trains on that one file (the other losses ignore the scores), so each seed sees the same batches.
for set in $sets; do
  teacher=$work/teacher/$set
  if [ ! -f "$teacher/metrics.json" ]; then
    rm -rf "$teacher" # what an interrupted run left
    $PYTHON -m reranker.train "${common[@]}" loss=group_ce trainer.max_steps=$((teacher_factor * steps)) \
      seed=$teacher_seed data.train_files="$data/$set/$mined/train.jsonl" data.val_files="$data/$set/$mined/val.jsonl" \
      hydra.run.dir="$teacher" "${extra[@]}"
    estimate
  fi
  [ -f "$work/data/$set/train.jsonl" ] ||
    $PYTHON -m reranker.prepare teacher "$data/$set/$mined/train.jsonl" --model "$teacher/export" \
      --out "$work/data/$set/train.jsonl" --batch-size 32
done

# train SET ARM OVERRIDE...: the arm's unfinished seeds as one Hydra multirun (one training at a time) into
# WORK/multirun/SET/ARM-sSEED.
train_arm() {
  local set=$1 arm=$2 seed folder todo=()
  shift 2
  for seed in $seeds; do
    folder=$work/multirun/$set/$arm-s$seed
    if [ -f "$folder/metrics.json" ] || [ -f "$folder/FAILED" ]; then continue; fi
    rm -rf "$folder" # what an interrupted run left
    todo+=("$seed")
  done
  [ "${#todo[@]}" -gt 0 ] || return 0
  $PYTHON -m reranker.train -m "${common[@]}" trainer.max_steps="$steps" "$@" "seed=$(IFS=,; echo "${todo[*]}")" \
    data.train_files="$work/data/$set/train.jsonl" data.val_files="$data/$set/$mined/val.jsonl" \
    hydra.sweep.dir="$work/multirun/$set" "hydra.sweep.subdir=$arm-s\${seed}" "${extra[@]}"
  for seed in "${todo[@]}"; do
    folder=$work/multirun/$set/$arm-s$seed
    [ -f "$folder/metrics.json" ] || echo "ended without metrics.json (diverged?)" >"$folder/FAILED"
  done
  estimate
}

# 2. Every arm, every seed, on each training set; validation on the same first stage's lists.
for arm in $arms; do
  for set in $sets; do
    # shellcheck disable=SC2086
    train_arm "$set" "$arm" ${arm_overrides[$arm]}
  done
done

# 3. The temperature and the loss chosen on validation (never on the evaluation lists); the chosen loss
#    again at each other group size, the same steps and queries per step.
# shellcheck disable=SC2086
$PYTHON $here/report.py select "$work" --arms $arms >"$work/selection.json.tmp"
mv "$work/selection.json.tmp" "$work/selection.json"
cat "$work/selection.json"
best=$($PYTHON -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_loss"])' "$work/selection.json")
for size in $group_sizes; do
  for set in $sets; do
    # shellcheck disable=SC2086
    train_arm "$set" "${best}_g$size" ${arm_overrides[$best]} data.group_size="$size"
  done
done

# 4. Every finished run (both training sets: in-domain and cross-domain) and the teachers on each first
#    stage's top 10 of each evaluation set: the same lists for every row, the first stage's own row, fused
#    rows (a by 5-fold cross-validation) and paired tests against the first stage.
models=()
for folder in "$work"/multirun/*/*/; do
  folder=${folder%/}
  [ -f "$folder/export/config.json" ] || continue
  name=${folder##*/} set=$(basename "$(dirname "$folder")")
  models+=(--model "$set/${name%-s*}/s${name##*-s}=$folder/export")
done
for set in $sets; do
  [ -f "$work/teacher/$set/export/config.json" ] && models+=(--model "$set/teacher/s$teacher_seed=$work/teacher/$set/export")
done
for test in $sets; do
  for retriever in bm25 dense hybrid; do
    $PYTHON -m reranker.evaluate "$data/$test/candidates_${retriever}_top10.jsonl" --corpus "$(eval_corpus "$test")" \
      "${models[@]}" --fusion-folds 5 --batch-size 32 --cache "$work/scores/$test" --out "$out/results/$test-$retriever" \
      >/dev/null
  done
done

# 5. Each training set's leaderboard (validation), then the tables and plots.
for set in $sets; do
  $PYTHON -m reranker.evaluation.leaderboard "$work/multirun/$set" --metric val/mrr@10 --out "$out/leaderboard/$set" >/dev/null
done
# shellcheck disable=SC2086
$PYTHON $here/report.py report "$work" "$out" --arms $arms
