#!/usr/bin/env bash
# The dense-first-stage data, steps 1-2 of run.sh (also used by experiments/objectives): the KorQuAD split and
# the MS MARCO sample split with BM25- and dense-mined triplets, and each first stage's candidate lists of the
# evaluation queries, under experiments/dense_first_stage/work/ (git-ignored). Skips what is already built.
# Needs the `dense` extra (faiss-cpu) and ../shared (SHARED=...; ME5=DIR reuses a built multilingual-e5-small).
# EVAL_ONLY=1 builds only the evaluation side (the splits and step 2's candidate lists), not the mined triplets.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHON=${PYTHON:-python} HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
shared=${SHARED:-../shared}
here=experiments/dense_first_stage
work=$here/work
me5=${ME5:-$work/me5-small}
mkdir -p "$work"
[ -f "$me5/model.safetensors" ] || "$shared/tools/me5-small/convert.sh" "$me5" "$PYTHON"

# multilingual-e5-small as a zero-shot bi-encoder: mean pooling, e5's prefixes; passage embeddings cached,
# one folder per corpus.
dense=(--dense-model "$me5" --pooling mean --query-prefix "query: " --passage-prefix "passage: "
  --dense-max-length 256)

# 1. Data. KorQuAD: title-disjoint train / val / eval, 2-sentence passages; negatives mined by each first
#    stage (ranks 3-50, 4 hard + 3 random, none containing the answer text). The split and the evaluation
#    side do not depend on the retriever.
mined=(bm25 dense)
[ -n "${EVAL_ONLY:-}" ] && mined=(bm25)  # the evaluation side does not depend on the retriever
for retriever in "${mined[@]}"; do
  [ -f "$work/korquad/$retriever/train.jsonl" ] ||
    $PYTHON -m reranker.prepare squad "$shared/data/korquad/KorQuAD_v1.0_dev.json" --out "$work/korquad/$retriever" \
      --sentences-per-passage 2 --eval-fraction 0.3 --val-fraction 0.05 --val-candidates 10 --max-val-queries 48 \
      --max-eval-queries 200 --num-random-negatives 3 --num-hard-negatives 4 --hard-negative-window 3 50 \
      --seed 42 --retriever "$retriever" "${dense[@]}" --embedding-cache "$work/embeddings/korquad-$retriever"
done
# MS MARCO sample: 600 train / 100 val / 300 eval queries over the shared 2,117-passage corpus; negatives
# mined by each first stage (ranks 3-50, 7 hard), dropping candidates within 5% of the positive's score.
[ -f "$work/msmarco/corpus.jsonl" ] || $PYTHON $here/msmarco_split.py "$shared/data" "$work/msmarco"
[ -n "${EVAL_ONLY:-}" ] && mined=()
for retriever in "${mined[@]}"; do
  for side in train val; do
    [ -f "$work/msmarco/$retriever/$side.jsonl" ] ||
      $PYTHON -m reranker.prepare mine --queries "$work/msmarco/${side}_queries.jsonl" \
        --corpus "$work/msmarco/corpus.jsonl" --out "$work/msmarco/$retriever/$side.jsonl" \
        --window 3 50 --num-hard-negatives 7 --relative-margin 0.05 --seed 42 --retriever "$retriever" "${dense[@]}" \
        --embedding-cache "$work/embeddings/msmarco"
  done
done

# 2. First stage alone on the evaluation queries: recall@10/30/100 and MRR@10 of each retriever; the top 10
#    are the lists every reranker reranks.
eval_queries() { if [ "$1" = korquad ]; then echo "$work/korquad/bm25/eval/queries.jsonl"; else echo "$work/msmarco/eval_queries.jsonl"; fi; }
eval_corpus() { if [ "$1" = korquad ]; then echo "$work/korquad/bm25/eval/corpus.jsonl"; else echo "$work/msmarco/corpus.jsonl"; fi; }
for set in korquad msmarco; do
  for retriever in bm25 dense hybrid; do
    for k in 10 30 100; do
      [ -s "$work/$set/first_stage_${retriever}_top$k.json" ] && continue
      $PYTHON -m reranker.prepare candidates --queries "$(eval_queries $set)" --corpus "$(eval_corpus $set)" \
        --out "$work/$set/candidates_${retriever}_top$k.jsonl" --top-k "$k" --retriever "$retriever" "${dense[@]}" --embedding-cache "$work/embeddings/$set-eval" \
        >"$work/$set/first_stage_${retriever}_top$k.json"
    done
  done
done
