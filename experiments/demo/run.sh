#!/usr/bin/env bash
# Record the demo (`make demo`, experiment=demo_ko) for each seed: experiments/demo/run.sh
# Each seed trains into experiments/demo/work/seedS/ (git-ignored) and its figures are recorded in
# experiments/demo/results/seedS.json (committed); a seed whose result file exists is skipped.
# SEEDS="42 7 1 123" by default; FORCE=1 re-measures them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
here=experiments/demo
for seed in ${SEEDS:-42 7 1 123}; do
  result=$here/results/seed$seed.json
  [ -f "$result" ] && [ -z "${FORCE:-}" ] && continue
  run=$here/work/seed$seed
  rm -rf "$run"
  start=$(date +%s) trained_on=$($PYTHON -c 'import sys; sys.path.insert(0, "experiments/demo"); import record; print(record.commit())')
  $PYTHON -m reranker.train experiment=demo_ko seed="$seed" hydra.run.dir="$run"
  $PYTHON $here/record.py "$run" "$result" --seconds $(( $(date +%s) - start )) --commit "$trained_on"
done
$PYTHON scripts/figures.py
