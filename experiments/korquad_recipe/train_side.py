"""The train side of the KorQuAD split as queries + corpus JSONL, for ``prepare mine``.

``python experiments/korquad_recipe/train_side.py KORQUAD_JSON OUT_DIR`` uses the split of
``experiments/korquad/run.sh`` (2-sentence passages, eval 0.3, val 0.05, seed 42), so the mined training data
shares no article with the validation and evaluation sides. Questions are listed in a seeded random order,
so that ``prepare mine --max-queries N`` takes questions from many articles.
"""

import random
import sys
from pathlib import Path

from reranker.preparation.records import write_jsonl
from reranker.preparation.squad import read_squad, split_by_title

source, out = sys.argv[1], Path(sys.argv[2])
sides = split_by_title(read_squad(source, 2), {"eval": 0.3, "val": 0.05}, 42)
questions = [q for article in sides["train"] for q in article.questions]
random.Random(42).shuffle(questions)
write_jsonl(out / "queries.jsonl", ({"qid": q.id, "query": q.query, "pos_ids": q.pos_ids} for q in questions))
write_jsonl(out / "corpus.jsonl", ({"id": p.id, "text": p.text} for a in sides["train"] for p in a.passages))
print(len(questions), "questions,", sum(len(a.passages) for a in sides["train"]), "passages")
