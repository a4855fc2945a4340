#!/usr/bin/env bash
# Regenerate the dense-first-stage experiment from the project root: experiments/dense_first_stage/run.sh
# Needs the `dense` extra (faiss-cpu) and ../shared (KorQuAD dev, the MS MARCO sample, the me5-small tool).
# Derived data, embeddings, runs and scores go to experiments/dense_first_stage/work/ (git-ignored); the
# report files (first_stage.md, results/, report.md) are written next to this script.
# SEEDS="42 7" by default; STEPS is read from conf/experiment/dense_first_stage.yaml unless given.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
here=experiments/dense_first_stage
work=$here/work
seeds=${SEEDS:-42 7}
me5=${ME5:-$work/me5-small}
mkdir -p "$work" "$here/results"
# 1-2. Data and each first stage's candidate lists of the evaluation queries (data.sh).
"$here/data.sh"

# The evaluation corpus of each set (the lists themselves are $work/$set/candidates_*_top10.jsonl).
eval_corpus() { if [ "$1" = korquad ]; then echo "$work/korquad/bm25/eval/corpus.jsonl"; else echo "$work/msmarco/corpus.jsonl"; fi; }

# 3. Train: the same reranker (experiment=dense_first_stage: same steps and settings) on BM25-mined and on
#    dense-mined triplets, each seed; validation on the dense first stage's lists for both arms.
for set in korquad msmarco; do
  for mined in bm25 dense; do
    for seed in $seeds; do
      run=$work/runs/$set-$mined-$seed
      [ -f "$run/metrics.json" ] && continue
      if [ "$set" = korquad ]; then train=$work/korquad/$mined/train.jsonl val=$work/korquad/dense/val.jsonl
      else train=$work/msmarco/$mined/train.jsonl val=$work/msmarco/dense/val.jsonl; fi
      $PYTHON -m reranker.train experiment=dense_first_stage model.model_name_or_path="$me5" \
        data.train_files="$train" data.val_files="$val" seed="$seed" task_name="dfs_$set-$mined" \
        hydra.run.dir="$run" callbacks.progress_bar=null
    done
  done
done

# 4. Evaluate every reranker on each first stage's top 10, end to end (a gold the first stage missed is a
#    miss for every row), each arm one system of its seeds, with the first stage's own row, fused rows (a by
#    5-fold cross-validation) and Holm-adjusted paired tests.
for set in korquad msmarco; do
  for retriever in bm25 dense hybrid; do
    models=()
    for mined in bm25 dense; do
      for seed in $seeds; do models+=(--model "$mined-mined=$work/runs/$set-$mined-$seed/export"); done
    done
    $PYTHON -m reranker.evaluate "$work/$set/candidates_${retriever}_top10.jsonl" --corpus "$(eval_corpus $set)" \
      "${models[@]}" --compare "without reranker" bm25-mined \
      --compare "without reranker" dense-mined --compare bm25-mined dense-mined --fusion-folds 5 --batch-size 32 --cache "$work/scores/$set" \
      --out "$here/results/$set-$retriever/end_to_end"
  done
done

# 5. The report: the first-stage summaries copied into results/, then README.md's generated tables.
$PYTHON $here/report.py record "$work"
$PYTHON scripts/figures.py
