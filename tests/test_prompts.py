"""Decoder rerankers at the serving layer: the Qwen3-Reranker prompt of our config gives the model card's
tokens and scores, truncation keeps the template's closing tokens, and bad kinds fail before loading."""

from pathlib import Path

import pytest
import torch
from conftest import build_tiny_qwen3, qwen3_model_card_scores
from omegaconf import OmegaConf
from transformers import AutoTokenizer

from reranker.core.errors import InputError
from reranker.model.kinds import ModelKind, Scorer

CONF = Path(__file__).resolve().parents[1] / "conf"
PAIRS = [
    ("서울에 대한 질문", "서울은 대한민국의 수도이다"),
    ("김치", "태양은 항성이다 태양은 항성이다"),
    ("부산에 대한 질문 무엇인가", "부산"),
]


def config_kind(name: str, **changes) -> ModelKind:
    kind = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{name}.yaml"))["kind"]
    return ModelKind.from_config({**kind, **changes})


def test_qwen3_prompt_of_the_config_gives_the_model_cards_tokens_and_scores(tiny_qwen3):
    kind = config_kind("qwen3_reranker_0_6b")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    model = kind.load_model(tiny_qwen3, tokenizer).eval()
    features = kind.encoder(tokenizer, 512)([q for q, _ in PAIRS], [p for _, p in PAIRS])
    card_ids, card_scores = qwen3_model_card_scores(tiny_qwen3, PAIRS, 512)
    assert torch.equal(features["input_ids"], card_ids)
    with torch.no_grad():
        ours = Scorer(kind, tokenizer)(model, features)
    assert ours.tolist() == pytest.approx(card_scores.tolist(), abs=1e-4)
    assert len({round(score, 3) for score in ours.tolist()}) == len(PAIRS)


def test_truncation_cuts_the_passage_and_keeps_the_closing_tokens(tiny_qwen3):
    kind = config_kind("qwen3_reranker_0_6b")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    encoder = kind.encoder(tokenizer, 260)
    query = "부산에 대한 질문"
    (ids,) = encoder.encode_pairs([query], ["서울은 대한민국의 수도이다 " * 60])
    assert len(ids) == 260
    suffix = tokenizer.encode(
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", add_special_tokens=False
    )
    assert ids[-len(suffix) :] == suffix
    assert ids[-len(suffix) - 1] != suffix[0]  # the passage's last kept token, not a second suffix
    assert f"<Query>: {query}\n<Document>: 서울은" in tokenizer.decode(ids)
    # A short pair is left alone: the same ids as without a limit.
    (short,) = encoder.encode_pairs([query], ["서울"])
    assert short == kind.encoder(tokenizer, 512).encode_pairs([query], ["서울"])[0]


def test_a_too_long_query_is_cut_too_and_the_template_still_survives(tiny_qwen3):
    kind = config_kind("qwen3_reranker_0_6b")
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    (ids,) = kind.encoder(tokenizer, 240).encode_pairs(["서울 " * 200], ["부산은 항구 도시이다"])
    text = tokenizer.decode(ids)
    assert len(ids) == 240 and text.endswith("<think>\n\n</think>\n\n")
    assert "<Query>: 서울 서울" in text and "\n<Document>:<|im_end|>" in text  # the passage went first


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"query_template": "<Query>\n"}, "query_template must contain the slot {query}"),
        ({"passage_template": "<Document>: <|im_end|>"}, "passage_template must contain the slot {passage}"),
        ({"query_template": None, "passage_template": None}, "yes_no needs a prompt"),
        ({"form": "ranker"}, "model.kind.form must be one of classifier, yes_no"),
        ({"temperature": 1.0}, "model.kind has unknown fields"),
    ],
)
def test_bad_kinds_fail_when_read(changes, message):
    with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        config_kind("qwen3_reranker_0_6b", **changes)


def test_a_model_without_yes_and_no_tokens_is_refused_before_loading(tmp_path):
    folder = build_tiny_qwen3(tmp_path / "no-yes-no", with_yes_no=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "yes" not in tokenizer.get_vocab()
    with pytest.raises(
        InputError, match="model.kind.yes_token 'yes' is not a token of the model's vocabulary"
    ):
        config_kind("qwen3_reranker_0_6b").load_model(folder, tokenizer)


def test_every_decoder_config_reads_as_a_kind():
    for name in ("qwen3_reranker_0_6b", "qwen3_reranker_4b", "bge_reranker_v2_gemma"):
        config = OmegaConf.load(CONF / "model" / f"{name}.yaml")
        if "kind" in config:
            assert ModelKind.from_config(OmegaConf.to_container(config.kind)).form == "yes_no"
    assert config_kind("bge_reranker_v2_m3").template is None


def test_without_a_no_token_the_score_is_the_yes_logit_alone(tiny_qwen3):
    """bge-reranker-v2-gemma's form: logit("Yes") at the last position (here "yes" of the tiny vocabulary)."""
    kind = config_kind("bge_reranker_v2_gemma", yes_token="yes", query_template="A: {query}")
    assert kind.no_token is None
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    model = kind.load_model(tiny_qwen3, tokenizer).eval()
    features = kind.encoder(tokenizer, 512)([q for q, _ in PAIRS], [p for _, p in PAIRS])
    text = tokenizer.decode(features["input_ids"][0], skip_special_tokens=True)
    assert text.startswith("A: 서울에 대한 질문\nB: 서울은") and text.endswith("either 'Yes' or 'No'.")
    with torch.no_grad():
        logits = model(**features).logits[:, -1]
        scores = Scorer(kind, tokenizer)(model, features)
    assert scores.tolist() == pytest.approx(
        logits[:, tokenizer.convert_tokens_to_ids("yes")].tolist(), abs=1e-5
    )
