#!/usr/bin/env bash
# Regenerates experiments/sweep/: a small real CPU sweep on the Korean sample data (2 learning rates x
# 2 group sizes, all-MiniLM-L6-v2, 12 steps each), then its leaderboard. Run from the repository root.
set -euo pipefail
export HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
python -m reranker.train -m hparams_search=lr_group_model experiment=demo_ko \
  model=minilm_demo model.lr=3e-5,1e-4 data.group_size=4,8 \
  trainer.max_steps=12 trainer.val_check_interval=12 data.max_length=128 \
  validate_before_training=false callbacks.progress_bar=null \
  hydra.sweep.dir=experiments/sweep/work
python -m reranker.leaderboard experiments/sweep/work --out experiments/sweep
