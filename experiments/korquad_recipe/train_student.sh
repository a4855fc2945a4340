#!/usr/bin/env bash
# Train one student on a triplet file: train_student.sh NAME EXPERIMENT TRAIN_JSONL [path overrides...]
# The training settings are conf/experiment/EXPERIMENT.yaml (recipe_student, recipe_student_distill);
# this script gives the student's folder, the data and the run folder.
set -euo pipefail
name=$1 experiment=$2 train=$3
shift 3
work=experiments/korquad_recipe/work
exec nice -n 10 ${PYTHON:-python} -m reranker.train experiment="$experiment" \
  model.model_name_or_path="$work/me5-small-l4" \
  data.train_files="$train" data.val_files="$work/data/val.jsonl" \
  hydra.run.dir="$work/runs/$name" task_name="recipe_$name" \
  "$@"
