#!/usr/bin/env bash
# Fine-tune one base model on the KorQuAD train side: train_one.sh NAME MODEL_GROUP [extra Hydra overrides...]
set -euo pipefail
name=$1 model=$2
shift 2
work=experiments/korquad/work
exec ${PYTHON:-python} -m reranker.train \
  model="$model" \
  data.train_files="$work/data/train.jsonl" data.val_files="$work/data/val.jsonl" \
  data.group_size=4 data.batch_size=8 data.val_batch_size=16 data.max_length=128 data.num_workers=1 \
  model.lr=1e-4 \
  trainer.max_epochs=1 trainer.max_steps=16 trainer.val_check_interval=8 +trainer.max_time=00:00:30:00 \
  trainer.log_every_n_steps=2 seed=42 validate_before_training=false task_name="korquad_$name" \
  hydra.run.dir="$work/runs/$name" callbacks.progress_bar=null \
  "$@"
