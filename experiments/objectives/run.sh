#!/usr/bin/env bash
# One part of the objectives study from the project root: experiments/objectives/run.sh [--max-minutes 100]
# (any option of `study.py run`), then the report from the result files. README: the arms, the sizing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# This checkout's package first, whichever checkout the environment was installed from.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python}
"$PYTHON" experiments/objectives/study.py run "$@"
"$PYTHON" experiments/objectives/report.py >/dev/null
"$PYTHON" experiments/objectives/study.py status "$@" | tail -1
