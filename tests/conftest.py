"""Fixtures: tiny random-init BERT (WordPiece) and XLM-R-style (Unigram, no token_type_ids) models, and data."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ci_guard import MISSING, pytest_runtest_makereport  # noqa: F401  (the hook: missing deps fail under CI)
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

TOPICS = {
    "서울": ["서울은 대한민국의 수도이다", "서울에는 한강이 흐른다", "서울의 인구는 약 천만 명이다"],
    "부산": ["부산은 항구 도시이다", "부산에는 해운대 해수욕장이 있다", "부산 국제 영화제가 열린다"],
    "김치": ["김치는 배추로 만든다", "김치는 발효 음식이다", "김장은 겨울에 한다"],
    "축구": ["축구는 열한 명이 한 팀이다", "월드컵은 사 년마다 열린다", "골키퍼는 손을 쓸 수 있다"],
    "태양": ["태양은 항성이다", "지구는 태양 주위를 돈다", "태양의 빛은 팔 분 걸린다"],
    "바다": ["동해는 깊은 바다이다", "서해에는 갯벌이 넓다", "남해에는 섬이 많다"],
}


def make_records() -> list[dict]:
    """Each sentence is a positive for a question about its topic; one same-topic negative."""
    records = []
    for topic, sentences in TOPICS.items():
        for index, sentence in enumerate(sentences):
            records.append(
                {
                    "query": f"{topic}에 대한 질문 {sentence.split()[1]} 무엇인가",
                    "pos": [sentence],
                    "neg": [sentences[(index + 1) % len(sentences)]],
                }
            )
    return records


def teacher_score(text: str) -> float:
    """A made-up teacher score, different for each fixture passage, so that a test can tell them apart."""
    return float(sum(map(ord, text)) % 1000) / 8


def with_teacher_scores(records: list[dict]) -> list[dict]:
    """The records with FlagEmbedding's ``pos_scores`` / ``neg_scores`` (one per passage, same order)."""
    return [
        {
            **r,
            "pos_scores": [teacher_score(t) for t in r["pos"]],
            "neg_scores": [teacher_score(t) for t in r["neg"]],
        }
        for r in records
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def fixture_texts() -> list[str]:
    """Every query and passage of :func:`make_records`: what the tiny tokenizers were trained on."""
    texts = []
    for record in make_records():
        texts += [record["query"], *record["pos"], *record["neg"]]
    return texts


# The tiny tokenizers' vocabularies, recorded from one training run (fixtures/make_tiny_vocab.py writes
# them): trained anew, they would differ from run to run, and so would every tiny model's scores.
TINY_VOCAB_FILE = Path(__file__).parent / "fixtures" / "tiny_vocab.json"
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNIGRAM_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@functools.cache
def _tiny_vocab() -> dict:
    return json.loads(TINY_VOCAB_FILE.read_text(encoding="utf-8"))


def _wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """BERT's pipeline (lower-cased, accents stripped, WordPiece) over the recorded 300-token vocabulary."""
    vocab = {token: index for index, token in enumerate(_tiny_vocab()["wordpiece"])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def _unigram_tokenizer() -> PreTrainedTokenizerFast:
    """XLM-R's pipeline (Metaspace, Unigram) over the recorded 113-piece vocabulary."""
    pieces = [(piece, score) for piece, score in _tiny_vocab()["unigram"]]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=UNIGRAM_SPECIALS.index("<unk>"), byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tokenizer.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=128,
    )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Random weights drawn from ``seed`` (the same in every run), torch's global stream left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=1)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer random BERT with a WordPiece tokenizer (uses token_type_ids)."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = _wordpiece_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=128, **SMALL)
    with seeded(0):
        BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> str:
    """A 2-layer random XLM-R-style model with a Unigram tokenizer (no token_type_ids)."""
    path = tmp_path_factory.mktemp("tiny-xlmr")
    tokenizer = _unigram_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        **SMALL,
    )
    with seeded(0):
        XLMRobertaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def triplet_files(tmp_path) -> tuple[str, str]:
    """Train and validation triplet files on disjoint queries."""
    records = make_records()
    train = write_jsonl(tmp_path / "train.jsonl", records[::2] + records[1::4])
    val = write_jsonl(tmp_path / "val.jsonl", records[3::4])
    return str(train), str(val)


def run_train_cli(*overrides: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    """``python -m reranker.train`` offline, in a subprocess (as a user runs it, with Hydra's run folder)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [python, "-m", "reranker.train", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


TOKENIZER_CLASSES = {"bert": "BertTokenizer", "xlm-roberta": "XLMRobertaTokenizer"}


def spread_copy(model_dir: str, output_dir: Path) -> str:
    """The model re-initialised with wide random weights, its tokenizer named by its model's class.

    At the usual initialiser range (0.02) a tiny random encoder gives every pair nearly the same score
    (gaps ~1e-6), too close to compare rankings. Real checkpoints name a model-specific tokenizer class,
    whose special tokens FlagEmbedding relies on when it joins a query and a passage itself.
    """
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_dir, initializer_range=0.3)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(output_dir)
    tokenizer_config_file = output_dir / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_config_file.read_text())
    tokenizer_config["tokenizer_class"] = TOKENIZER_CLASSES[config.model_type]
    tokenizer_config_file.write_text(json.dumps(tokenizer_config, indent=2))
    return str(output_dir)


@pytest.fixture(scope="session")
def wide_bert(tiny_bert, tmp_path_factory) -> str:
    """The tiny BERT with wide random weights (:func:`spread_copy`): rankings that can be compared."""
    return spread_copy(tiny_bert, tmp_path_factory.mktemp("wide-bert"))


@pytest.fixture(scope="session")
def wide_xlmr(tiny_xlmr, tmp_path_factory) -> str:
    """The tiny XLM-R with wide random weights (:func:`spread_copy`)."""
    return spread_copy(tiny_xlmr, tmp_path_factory.mktemp("wide-xlmr"))


def records_with_negatives() -> list[dict]:
    """:func:`make_records` with 1 to 3 more negatives each (groups of different sizes; a passage may
    repeat within a query)."""
    texts = [text for sentences in TOPICS.values() for text in sentences]
    records = make_records()
    for index, record in enumerate(records):
        record["neg"] += texts[index % 7 :: 5][: 1 + index % 3]
    return records


def train_tiny_run(model_dir: str, root: Path, python: str = sys.executable) -> Path:
    """A short real training run: ``<run>/checkpoints``, ``.hydra``, ``metrics.json`` and ``export/``
    (the best checkpoint exported by the run itself, model card included)."""
    model_dir = spread_copy(model_dir, root / "base")
    records = make_records()
    train = write_jsonl(root / "train.jsonl", records[::2] + records[1::4])
    val = write_jsonl(root / "val.jsonl", records[3::4])
    run_dir = root / "run"
    result = run_train_cli(
        f"model.model_name_or_path={model_dir}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"hydra.run.dir={run_dir}",
        "data.group_size=3",
        "data.batch_size=4",
        "data.max_length=64",
        "data.num_workers=0",
        "model.lr=1e-3",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null",
        python=python,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def bert_run(tiny_bert, tmp_path_factory) -> Path:
    return train_tiny_run(tiny_bert, tmp_path_factory.mktemp("run-bert"))


@pytest.fixture(scope="session")
def xlmr_run(tiny_xlmr, tmp_path_factory) -> Path:
    return train_tiny_run(tiny_xlmr, tmp_path_factory.mktemp("run-xlmr"))


@pytest.fixture(params=["bert_run", "xlmr_run"])
def trained_run(request) -> Path:
    """Each tiny run in turn (BERT with token_type_ids, XLM-R without)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def nan_model(tiny_bert, tmp_path):
    """The tiny BERT with every weight set to NaN: every loss is NaN."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    path = tmp_path / "nan-bert"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return str(path)


# The chat markup of Qwen3 (special tokens) and its chat template, enough of it to render a system and a
# user message with the generation prompt.
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}"
)


def _byte_level_tokenizer(with_yes_no: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE like Qwen's: a pair is its two texts joined, no special tokens added.

    Trained here: every symbol of a byte-level BPE starts in its fixed, sorted alphabet, so its merges are
    the same in every run (unlike WordPiece's and Unigram's, recorded in fixtures/tiny_vocab.json)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    answers = ["yes", "no", "yes\nno"] * 20 if with_yes_no else []
    prompt_words = ["Judge whether the Document meets the requirements based on the Query and the Instruct"]
    tokenizer.train_from_iterator(
        fixture_texts() + answers + prompt_words * 5,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=CHAT_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=CHAT_SPECIALS[1:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_tiny_qwen3(path: Path, with_yes_no: bool = True, seed: int = 0) -> str:
    """A 2-layer random Qwen3 causal LM (tied embeddings, grouped-query attention) and its tokenizer."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _byte_level_tokenizer(with_yes_no)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.3,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> str:
    """A tiny random Qwen3 with a byte-level BPE tokenizer holding "yes", "no" and Qwen's chat tokens."""
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


def qwen3_model_card_scores(folder: str, pairs, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The usage code of the Qwen3-Reranker model card (prefix, body, suffix; left padding; yes/no logits)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
    suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
    task = "Given a web search query, retrieve relevant passages that answer the query"
    texts = [f"<Instruct>: {task}\n<Query>: {query}\n<Document>: {doc}" for query, doc in pairs]
    inputs = tokenizer(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt")
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
    return inputs["input_ids"], batch_scores[:, token_true_id] - batch_scores[:, token_false_id]


def save_bi_encoder(model_dir: str, path: Path) -> str:
    """The tiny model as a plain encoder (AutoModel, no head; for the dense first stage), wide random weights."""
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_dir, initializer_range=0.3)
    AutoModel.from_config(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def bert_encoder(tiny_bert, tmp_path_factory) -> str:
    return save_bi_encoder(tiny_bert, tmp_path_factory.mktemp("bert-encoder"))


@pytest.fixture(scope="session")
def xlmr_encoder(tiny_xlmr, tmp_path_factory) -> str:
    return save_bi_encoder(tiny_xlmr, tmp_path_factory.mktemp("xlmr-encoder"))


@pytest.fixture(params=["bert_encoder", "xlmr_encoder"])
def bi_encoder(request) -> str:
    """Each tiny bi-encoder in turn (BERT with token_type_ids, XLM-R without)."""
    return request.getfixturevalue(request.param)
