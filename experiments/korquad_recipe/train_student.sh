#!/usr/bin/env bash
# Train one student on a triplet file: train_student.sh NAME TRAIN_JSONL [extra Hydra overrides...]
# Every student: the 4-layer me5-small, groups of 4 (1 positive + 3 negatives), 8 queries a step,
# 32 steps (one epoch of the 256 mined questions), validation at the end on the KorQuAD validation side.
set -euo pipefail
name=$1 train=$2
shift 2
work=experiments/korquad_recipe/work
exec nice -n 10 ${PYTHON:-python} -m reranker.train \
  model=multilingual_e5_small model.model_name_or_path="$work/me5-small-l4" \
  data.train_files="$train" data.val_files="$work/data/val.jsonl" \
  data.group_size=4 data.batch_size=8 data.val_batch_size=16 data.max_length=128 data.num_workers=1 \
  model.lr=2e-4 \
  trainer.max_epochs=1 trainer.max_steps=32 trainer.val_check_interval=32 +trainer.max_time=00:00:30:00 \
  trainer.log_every_n_steps=2 seed=42 validate_before_training=false task_name="recipe_$name" \
  hydra.run.dir="$work/runs/$name" callbacks.progress_bar=null \
  "$@"
