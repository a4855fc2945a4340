"""Read a SQuAD-format QA file (KorQuAD 1.0 is one) into passages and questions, chunked and split by title.

A paragraph is cut into passages of ``sentences_per_passage`` sentences (0 keeps whole paragraphs). A
question's gold passages are the passages of its paragraph that overlap its first annotated answer span;
``answers`` holds every annotated answer text, used to keep answer-bearing passages out of the negatives.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from reranker.core.errors import InputError

# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by whitespace.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


@dataclass
class Passage:
    id: str
    title: str
    text: str
    start: int  # character offset of the passage in its paragraph
    end: int


@dataclass
class Question:
    id: str
    title: str
    query: str
    pos_ids: list[str]
    answers: list[str] = field(default_factory=list)


@dataclass
class Article:
    title: str
    passages: list[Passage]
    questions: list[Question]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text`` (whitespace between them excluded)."""
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        spans.append((start, match.start() + len(match.group(0).rstrip())))
        start = match.end()
    if start < len(text.rstrip()):
        spans.append((start, len(text.rstrip())))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def chunk_paragraph(text: str, sentences_per_passage: int) -> list[tuple[int, int]]:
    """Character spans of passages of ``sentences_per_passage`` consecutive sentences (0: the whole text)."""
    sentences = split_sentences(text)
    if sentences_per_passage <= 0 or not sentences:
        return [(0, len(text))]
    return [
        (sentences[i][0], sentences[min(i + sentences_per_passage, len(sentences)) - 1][1])
        for i in range(0, len(sentences), sentences_per_passage)
    ]


def _field(value: dict, name: str, kind: type, where: str):
    item = value.get(name) if isinstance(value, dict) else None
    if not isinstance(item, kind):
        raise InputError(f"{where}: field '{name}' must be a {kind.__name__}, got {type(item).__name__}")
    return item


def read_squad(path: str | Path, sentences_per_passage: int = 0) -> list[Article]:
    """Articles of a SQuAD-format file, checked; errors name the file and the JSON path of the bad field."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    data = _field(document, "data", list, f"{path}: top level (expected SQuAD: {{'data': [...]}})")
    articles, titles, qids = [], set(), set()
    for a, article in enumerate(data):
        where = f"{path}: data[{a}]"
        title = _field(article, "title", str, where)
        if title in titles:
            raise InputError(f"{where}: duplicate title {title!r}")
        titles.add(title)
        passages, questions = [], []
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where)):
            pwhere = f"{where}.paragraphs[{p}]"
            context = _field(paragraph, "context", str, pwhere)
            if not context.strip():
                raise InputError(f"{pwhere}: field 'context' is empty (a passage needs text)")
            spans = chunk_paragraph(context, sentences_per_passage)
            ids = [f"{a}-{p}-{c}" for c in range(len(spans))]
            passages += [Passage(i, title, context[s:e], s, e) for i, (s, e) in zip(ids, spans, strict=True)]
            for q, qa in enumerate(_field(paragraph, "qas", list, pwhere)):
                qwhere = f"{pwhere}.qas[{q}]"
                qid = str(_field(qa, "id", str, qwhere))
                if qid in qids:
                    raise InputError(f"{qwhere}: duplicate question id {qid!r}")
                qids.add(qid)
                question = _field(qa, "question", str, qwhere)
                if not question.strip():
                    raise InputError(f"{qwhere}: field 'question' is empty (a query needs text)")
                answers = _field(qa, "answers", list, qwhere)
                if not answers:
                    raise InputError(
                        f"{qwhere}: field 'answers' is empty (unanswerable questions are not supported)"
                    )
                texts = [_field(ans, "text", str, f"{qwhere}.answers[{n}]") for n, ans in enumerate(answers)]
                begin = _field(answers[0], "answer_start", int, f"{qwhere}.answers[0]")
                end = begin + len(texts[0])
                if context[begin:end] != texts[0]:
                    raise InputError(
                        f"{qwhere}.answers[0]: 'answer_start' {begin} does not point at {texts[0]!r}"
                    )
                gold = [i for i, (s, e) in zip(ids, spans, strict=True) if s < end and begin < e]
                questions.append(Question(qid, title, question, gold, texts))
        articles.append(Article(title, passages, questions))
    if not articles:
        raise InputError(f"{path}: field 'data' is empty")
    return articles


def split_by_title(
    articles: list[Article], fractions: dict[str, float], seed: int
) -> dict[str, list[Article]]:
    """Assign whole articles to sides (e.g. ``{"eval": 0.3, "val": 0.05}``; the rest is ``"train"``).

    Titles are shuffled with ``seed``; each side gets ``round(fraction * n)`` articles, at least one.
    """
    order = sorted(articles, key=lambda article: article.title)
    random.Random(seed).shuffle(order)
    sides, start = {}, 0
    for name, fraction in fractions.items():
        count = max(1, round(fraction * len(order)))
        sides[name] = order[start : start + count]
        start += count
    sides["train"] = order[start:]
    if not sides["train"]:
        raise InputError(f"the split {fractions} leaves no article for training ({len(order)} articles)")
    return sides
