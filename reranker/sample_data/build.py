"""Build the Korean sample triplet files from ``passages.jsonl``.

``passages.jsonl`` holds short hand-written Korean passages, each tagged with a topic and carrying
a few questions that only that passage answers. This script turns them into two triplet files
(one JSON object per line, keys ``query``, ``pos``, ``neg``) written next to this script:

* ``ko_val.jsonl``: every question of 40 held-out passages, chosen round-robin over shuffled topics
  so the held-out set spreads across topics. Each line has the passage as its single positive and 9
  negatives (up to 3 from the same topic, the rest drawn from all other passages), giving 10
  candidates per query.
* ``ko_train.jsonl``: every question of the remaining passages, with one same-topic passage as a
  hard negative. Groups are deliberately short; the training code fills them with random corpus
  negatives.

Everything is driven by ``random.Random(SEED)``, so running the script twice gives byte-identical
files. It takes no arguments: ``python reranker/sample_data/build.py``.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

SEED = 0
NUM_VAL_PASSAGES = 40
VAL_NUM_NEG = 9
VAL_MAX_SAME_TOPIC_NEG = 3

HERE = Path(__file__).parent
PASSAGES_PATH = HERE / "passages.jsonl"
TRAIN_PATH = HERE / "ko_train.jsonl"
VAL_PATH = HERE / "ko_val.jsonl"

Passage = dict[str, Any]
Triplet = dict[str, Any]


def load_passages(path: Path) -> list[Passage]:
    """Read passages and check that ids, texts and questions are unique."""
    with path.open(encoding="utf-8") as f:
        passages = [json.loads(line) for line in f if line.strip()]
    ids = [p["id"] for p in passages]
    texts = [p["text"] for p in passages]
    questions = [q for p in passages for q in p["questions"]]
    assert len(set(ids)) == len(ids), "duplicate passage id"
    assert len(set(texts)) == len(texts), "duplicate passage text"
    assert len(set(questions)) == len(questions), "duplicate question text"
    return sorted(passages, key=lambda p: p["id"])


def group_by_topic(passages: list[Passage]) -> dict[str, list[Passage]]:
    """Map each topic to its passages, in id order."""
    by_topic: dict[str, list[Passage]] = defaultdict(list)
    for p in passages:
        by_topic[p["topic"]].append(p)
    return dict(sorted(by_topic.items()))


def pick_val_ids(by_topic: dict[str, list[Passage]], rng: random.Random, n: int) -> set[str]:
    """Pick ``n`` passage ids round-robin over shuffled topics, one shuffled passage per topic per round."""
    topics = list(by_topic)
    rng.shuffle(topics)
    queues = {}
    for t in topics:
        ids = [p["id"] for p in by_topic[t]]
        rng.shuffle(ids)
        queues[t] = ids
    picked: list[str] = []
    while len(picked) < n:
        progressed = False
        for t in topics:
            # Keep at least one passage of every topic on the train side.
            if len(queues[t]) > 1 and len(picked) < n:
                picked.append(queues[t].pop())
                progressed = True
        if not progressed:
            raise ValueError(f"cannot pick {n} val passages")
    return set(picked)


def build_val(
    val: list[Passage], passages: list[Passage], by_topic: dict[str, list[Passage]], rng: random.Random
) -> list[Triplet]:
    """One line per question: the passage as positive plus 9 negatives (up to 3 same-topic)."""
    lines: list[Triplet] = []
    for p in val:
        same = [o["text"] for o in by_topic[p["topic"]] if o["id"] != p["id"]]
        others = [o["text"] for o in passages if o["topic"] != p["topic"]]
        for q in p["questions"]:
            neg = rng.sample(same, min(VAL_MAX_SAME_TOPIC_NEG, len(same)))
            neg += rng.sample(others, VAL_NUM_NEG - len(neg))
            rng.shuffle(neg)
            assert p["text"] not in neg and len(set(neg)) == VAL_NUM_NEG
            lines.append({"query": q, "pos": [p["text"]], "neg": neg})
    return lines


def build_train(
    train: list[Passage], by_topic: dict[str, list[Passage]], rng: random.Random
) -> list[Triplet]:
    """One line per question: the passage as positive plus one same-topic hard negative."""
    lines: list[Triplet] = []
    for p in train:
        same = [o["text"] for o in by_topic[p["topic"]] if o["id"] != p["id"]]
        for q in p["questions"]:
            neg = [rng.choice(same)]
            assert p["text"] not in neg
            lines.append({"query": q, "pos": [p["text"]], "neg": neg})
    return lines


def write_jsonl(path: Path, lines: list[Triplet]) -> None:
    """Write one JSON object per line, UTF-8, ``\\n``-terminated."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def main() -> None:
    """Build ``ko_train.jsonl`` and ``ko_val.jsonl`` next to this script."""
    rng = random.Random(SEED)
    passages = load_passages(PASSAGES_PATH)
    by_topic = group_by_topic(passages)
    val_ids = pick_val_ids(by_topic, rng, NUM_VAL_PASSAGES)
    val = [p for p in passages if p["id"] in val_ids]
    train = [p for p in passages if p["id"] not in val_ids]

    val_lines = build_val(val, passages, by_topic, rng)
    train_lines = build_train(train, by_topic, rng)

    val_queries = {line["query"] for line in val_lines}
    train_queries = {line["query"] for line in train_lines}
    assert not val_queries & train_queries, "a question appears in both train and val"

    write_jsonl(VAL_PATH, val_lines)
    write_jsonl(TRAIN_PATH, train_lines)
    print(
        f"{len(passages)} passages, {len(by_topic)} topics -> "
        f"{len(train_lines)} train queries ({len(train)} passages), "
        f"{len(val_lines)} val queries ({len(val)} passages)"
    )


if __name__ == "__main__":
    main()
