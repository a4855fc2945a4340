"""Decoder rerankers end to end on a tiny random Qwen3: LoRA trains only the adapters, checkpoints hold
them alone, a killed run resumes exactly, exports (merged and adapter-only) load in ``Reranker``, and the
clients of such models (the Qwen3-Reranker model card, AutoModelForSequenceClassification,
sentence-transformers' CrossEncoder) score exports as ``Reranker.score`` does, within 1e-4."""

from pathlib import Path

import pytest
import torch
from conftest import make_records, qwen3_model_card_scores, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides
from omegaconf import OmegaConf
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker import Reranker
from reranker.cli import main as cli
from reranker.model.kinds import ModelKind
from reranker.serving.export import export_checkpoint
from reranker.train import train

CONF = Path(__file__).resolve().parents[1] / "conf"
PAIRS = [
    ("서울에 대한 질문 대한민국의 무엇인가", "서울은 대한민국의 수도이다"),
    ("서울에 대한 질문 대한민국의 무엇인가", "김치는 배추로 만든다"),
    ("서울에 대한 질문 대한민국의 무엇인가", "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다"),
    ("김치", "김치는 발효 음식이다"),
]


def config_kind() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "model" / "qwen3_reranker_0_6b.yaml").kind)


def data_files(folder: Path) -> tuple[str, str]:
    records = make_records()
    train_file = write_jsonl(folder / "train.jsonl", records[::2] + records[1::4])
    val_file = write_jsonl(folder / "val.jsonl", records[3::4])
    return str(train_file), str(val_file)


def decoder_overrides(
    model_config: str, model_dir: str, folder: Path, output: Path, *extra: str
) -> list[str]:
    return [
        *tiny_run_overrides(model_dir, *data_files(folder), output),
        f"model={model_config}",
        f"model.model_name_or_path={model_dir}",
        "data.max_length=300",  # the tiny tokenizer spends ~190 tokens on the Qwen3 prompt
        "trainer.max_epochs=1",
        *extra,
    ]


@pytest.fixture(scope="module")
def yes_no_run(tiny_qwen3, tmp_path_factory) -> tuple[Path, dict]:
    """Qwen3-Reranker's config (yes/no scoring, LoRA, gradient checkpointing) on the tiny Qwen3."""
    folder = tmp_path_factory.mktemp("yes-no")
    output = folder / "run"
    metrics = train(compose_config(decoder_overrides("qwen3_reranker_0_6b", tiny_qwen3, folder, output)))
    return output, metrics


@pytest.fixture(scope="module")
def seq_cls_run(tiny_qwen3, tmp_path_factory) -> Path:
    """The seq-cls form: a new classification head on the tiny Qwen3, LoRA, the same prompt."""
    folder = tmp_path_factory.mktemp("seq-cls")
    output = folder / "run"
    train(compose_config(decoder_overrides("qwen3_reranker_0_6b_seq_cls", tiny_qwen3, folder, output)))
    return output


@pytest.mark.slow
def test_lora_trains_only_the_adapters_and_checkpoints_hold_only_them(yes_no_run, tiny_qwen3):
    output, metrics = yes_no_run
    checkpoint = torch.load(output / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    assert state and all("lora_A" in name or "lora_B" in name for name in state)
    # 2 layers x 7 projections x (A, B)
    assert len(state) == 2 * 7 * 2
    (optimizer,) = checkpoint["optimizer_states"]
    assert sum(len(group["params"]) for group in optimizer["param_groups"]) == len(state)
    assert metrics["val/mrr@10"] != metrics["zero_shot/mrr@10"]


@pytest.mark.slow
def test_exports_merged_and_adapter_only_score_like_the_checkpoint(yes_no_run, tiny_qwen3, tmp_path):
    output, _ = yes_no_run
    checkpoint = output / "checkpoints" / "last.ckpt"
    merged = export_checkpoint(checkpoint, tmp_path / "merged")
    adapter = tmp_path / "adapter"
    cli(["export", str(checkpoint), "--out", str(adapter), "--adapter-only"])  # as on the command line
    assert {"model.safetensors", "reranker.json", "tokenizer.json"} <= {p.name for p in merged.iterdir()}
    assert "adapter_config.json" not in {p.name for p in merged.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert "model.safetensors" not in {p.name for p in adapter.iterdir()}
    assert (adapter / "adapter_model.safetensors").stat().st_size < (
        merged / "model.safetensors"
    ).stat().st_size

    expected = Reranker(checkpoint, max_length=512, device="cpu").score(PAIRS)
    assert Reranker(merged, device="cpu").score(PAIRS) == pytest.approx(expected, abs=1e-4)
    assert Reranker(adapter, device="cpu").score(PAIRS) == pytest.approx(expected, abs=1e-4)
    kind = Reranker(merged, device="cpu").kind
    base = Reranker(tiny_qwen3, device="cpu", kind=kind).score(PAIRS)
    assert max(abs(a - b) for a, b in zip(base, expected, strict=True)) > 1e-3  # the adapters changed scores


@pytest.mark.slow
def test_the_qwen3_model_card_usage_scores_the_export_like_reranker(yes_no_run):
    export = yes_no_run[0] / "export"
    readme = (export / "README.md").read_text()
    assert "logit(yes) - logit(no)" in readme and "AutoModelForSequenceClassification" not in readme
    _, card = qwen3_model_card_scores(str(export), PAIRS, 512)
    ours = Reranker(export, device="cpu").score(PAIRS)
    assert card.tolist() == pytest.approx(ours, abs=1e-4)
    assert len({round(score, 3) for score in ours}) == len(PAIRS)


def seq_cls_sides(export: Path) -> tuple[list[str], list[str]]:
    """The pair as the seq-cls model cards format it: the prompt's query side and passage side."""
    template = Reranker(export, device="cpu").kind.template
    sides = [template.sides(query, passage) for query, passage in PAIRS]
    return [query for (query, _), _ in sides], [passage for _, (passage, _) in sides]


@pytest.mark.slow
def test_seq_cls_export_is_scored_alike_by_transformers_and_cross_encoder(seq_cls_run):
    export = seq_cls_run / "export"
    assert Reranker(export, device="cpu").kind.form == "classifier"
    ours = Reranker(export, device="cpu").score(PAIRS)
    queries, passages = seq_cls_sides(export)

    tokenizer = AutoTokenizer.from_pretrained(export)
    model = AutoModelForSequenceClassification.from_pretrained(export).eval()
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    with torch.no_grad():
        inputs = tokenizer(
            queries, passages, padding=True, truncation=True, max_length=512, return_tensors="pt"
        )
        logits = model(**inputs).logits.view(-1)
    assert logits.tolist() == pytest.approx(ours, abs=1e-4)

    assert len({round(score, 3) for score in ours}) == len(PAIRS)


@pytest.mark.parametrize("run", ["yes_no_run", "seq_cls_run"])
@pytest.mark.slow
def test_cross_encoder_scores_raw_pairs_of_either_form_through_the_exported_chat_template(run, request):
    output = request.getfixturevalue(run)
    export = (output[0] if isinstance(output, tuple) else output) / "export"
    ours = Reranker(export, device="cpu").score(PAIRS)
    cross_encoder = CrossEncoder(str(export), device="cpu")
    # The export records the score as the raw logit (an identity activation): the CrossEncoder's default.
    assert cross_encoder.predict(PAIRS).tolist() == pytest.approx(ours, abs=1e-4)
    predicted = cross_encoder.predict(PAIRS, activation_fn=torch.nn.Sigmoid())
    assert predicted.tolist() == pytest.approx(torch.sigmoid(torch.tensor(ours)).tolist(), abs=1e-4)


@pytest.mark.slow
def test_killed_and_resumed_lora_run_ends_like_an_uninterrupted_one(tiny_qwen3, tmp_path):
    extra = ["trainer.val_check_interval=2"]
    uninterrupted = tmp_path / "uninterrupted"
    expected_metrics = train(
        compose_config(decoder_overrides("qwen3_reranker_0_6b", tiny_qwen3, tmp_path, uninterrupted, *extra))
    )
    resumed = tmp_path / "resumed"
    kill = ["+callbacks.kill._target_=tests.faults.InterruptAt", "+callbacks.kill.step=3"]
    with pytest.raises(Exception, match="interrupted after step 3"):
        train(
            compose_config(
                decoder_overrides("qwen3_reranker_0_6b", tiny_qwen3, tmp_path, resumed, *extra, *kill)
            )
        )
    metrics = train(
        compose_config(
            decoder_overrides("qwen3_reranker_0_6b", tiny_qwen3, tmp_path, resumed, *extra, "ckpt_path=last")
        )
    )
    assert metrics == expected_metrics
    weights = [
        torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for folder in (uninterrupted, resumed)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model.lora.target_modules=[query_key_value]",
            "error: model.lora.target_modules ['query_key_value'] match no linear layer of the model",
        ),
        (
            "model.kind.yes_token=oui",
            "error: model.kind.yes_token 'oui' is not a token of the model's vocabulary",
        ),
        (
            "model.kind.passage_template='<Document>'",
            "error: model.kind.passage_template must contain the slot {passage} exactly once",
        ),
    ],
)
@pytest.mark.slow
def test_bad_decoder_settings_stop_the_run_before_training(override, message, tiny_qwen3, tmp_path):
    output = tmp_path / "run"
    overrides = decoder_overrides("qwen3_reranker_0_6b", tiny_qwen3, tmp_path, output, override)
    result = run_train_cli(*[o for o in overrides if not o.startswith("paths.")], f"hydra.run.dir={output}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert not (output / "checkpoints").exists() and not (output / "export").exists()


def test_kind_round_trips_through_its_config():
    kind = ModelKind(form="yes_no", query_template="{query}", passage_template="{passage}", no_token=None)
    assert ModelKind.from_config(kind.to_config()) == kind


LOSSES = sorted(path.stem for path in (CONF / "loss").glob("*.yaml"))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.slow
def test_every_loss_trains_a_yes_no_decoder(loss, tiny_qwen3, tmp_path):
    records = [
        {**record, "pos_scores": [2.0] * len(record["pos"]), "neg_scores": [-1.0] * len(record["neg"])}
        for record in make_records()
    ]
    train_file = write_jsonl(tmp_path / "train.jsonl", records[::2])
    val_file = write_jsonl(tmp_path / "val.jsonl", records[1::4])
    overrides = [
        *tiny_run_overrides(tiny_qwen3, str(train_file), str(val_file), tmp_path / "run"),
        "model=qwen3_reranker_0_6b",
        f"model.model_name_or_path={tiny_qwen3}",
        f"loss={loss}",
        "data.max_length=300",
        "trainer.max_steps=2",
        "validate_before_training=false",
        "export_dir=null",
    ]
    start = Reranker(tiny_qwen3, device="cpu", kind=config_kind()).score(PAIRS)
    metrics = train(compose_config(overrides))
    assert 0.0 <= metrics["val/mrr@10"] <= 1.0
    trained = Reranker(tmp_path / "run" / "checkpoints" / "last.ckpt", device="cpu").score(PAIRS)
    assert max(abs(a - b) for a, b in zip(start, trained, strict=True)) > 1e-4  # the loss moved the adapters


@pytest.mark.parametrize("run", ["yes_no_run", "seq_cls_run"])
@pytest.mark.slow
def test_prompt_kinds_score_alike_whatever_the_token_budget_and_input_order(run, request):
    output = request.getfixturevalue(run)
    export = (output[0] if isinstance(output, tuple) else output) / "export"
    reranker = Reranker(export, device="cpu")
    expected = reranker.score(PAIRS, batch_size=1)
    # ~200 tokens a prompt: 450 tokens make batches of two, 1 token batches of one.
    for batch_size, max_tokens in ((4, 8192), (4, 450), (4, 1)):
        scores = reranker.score(PAIRS, batch_size=batch_size, max_tokens=max_tokens)
        assert scores == pytest.approx(expected, abs=1e-4)
    order = (2, 0, 3, 1)
    shuffled = reranker.score([PAIRS[i] for i in order], max_tokens=450)
    assert shuffled == pytest.approx([expected[i] for i in order], abs=1e-4)
    assert len({round(score, 3) for score in expected}) == len(PAIRS)  # the order checks mean something
