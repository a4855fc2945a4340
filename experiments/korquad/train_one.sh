#!/usr/bin/env bash
# Fine-tune one base model on the KorQuAD train side: train_one.sh NAME EXPERIMENT [path overrides...]
# The training settings are conf/experiment/EXPERIMENT.yaml; this script gives the data, the run folder
# and its name.
set -euo pipefail
name=$1 experiment=$2
shift 2
work=experiments/korquad/work
exec ${PYTHON:-python} -m reranker.train experiment="$experiment" \
  data.train_files="$work/data/train.jsonl" data.val_files="$work/data/val.jsonl" \
  hydra.run.dir="$work/runs/$name" task_name="korquad_$name" \
  "$@"
