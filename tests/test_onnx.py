"""ONNX exports: ``Reranker(path, backend="onnx")`` scores as the torch weights do under the scoring
contract (float32 within 1e-4; int8 within a stated bound and the same ranking, near enough), and
sentence-transformers' ``CrossEncoder(path, backend="onnx")`` loads the same files.

The export folders are built without training: a tiny model with wide random weights and a
``reranker.json`` recording short lengths, so every pair below is cut.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_qwen3, spread_copy
from scipy.stats import spearmanr
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from reranker import Reranker
from reranker.core.errors import InputError
from reranker.evaluation.evaluate import main as evaluate_main
from reranker.model.contract import ScoringContract
from reranker.model.kinds import ModelKind
from reranker.model.onnx_backend import FINGERPRINT_FILE, ONNX_FILE, QUANTIZED_FILE
from reranker.serving.export import main as export_main
from reranker.serving.onnx_export import export_onnx

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
COMPAT_PYTHON = Path(os.environ.get("RERANKER_COMPAT_PYTHON", ROOT / ".venv-compat" / "bin" / "python"))
COMPAT_SCRIPT = Path(__file__).parent / "compat" / "score_with_onnx_cross_encoder.py"
OLD_CHECKPOINT = Path(__file__).parent / "fixtures" / "old_checkpoint.ckpt"

MAX_LENGTH, QUERY_MAX_LENGTH = 16, 4
LONG_QUERY = "대한민국의 수도 서울에 대한 질문 김치와 부산과 해운대에 대한 질문"
SHORT_QUERY = "서울은 수도"
PASSAGES = [
    "서울은 대한민국의 수도이다 서울에는 한강이 흐른다 서울의 인구는 약 천만 명이다",
    "김치는 배추로 만든다 김치는 발효 음식이다 김장은 겨울에 한다",
    "부산은 항구 도시이다 부산에는 해운대 해수욕장이 있다 부산 국제 영화제가 열린다",
    "축구는 열한 명이 한 팀이다 월드컵은 사 년마다 열린다",
    "태양은 항성이다 지구는 태양 주위를 돈다 태양의 빛은 팔 분 걸린다",
    "동해는 깊은 바다이다 서해에는 갯벌이 넓다 남해에는 섬이 많다",
    "서울에는 한강이 흐른다",
    "김치",
]
PAIRS = [(query, passage) for query in (LONG_QUERY, SHORT_QUERY) for passage in PASSAGES]
# int8 (dynamic quantisation, 7-bit weights) against float32 on these tiny wide-weight models (the same
# tokenizers and weights in every run): the mean score difference is about 0.03 of the float32 scores'
# range and Spearman about 0.98, on both; the bounds leave room for other CPUs' int8 kernels.
# Full 8-bit weights saturate on CPUs with AVX2 but no VNNI: there the mean difference reached 0.06-0.58
# of the range and Spearman fell to 0.69-0.97. Real models, with narrower weights, quantise closer.
INT8_MAX_MEAN_ERROR_SHARE = 0.08
INT8_MIN_SPEARMAN = 0.9


def make_export(model_dir: str, folder: Path) -> Path:
    """An export folder as ``reranker export`` writes one: weights, tokenizer, the contract in
    ``reranker.json`` and in the settings other clients read (max_length, identity activation)."""
    spread_copy(model_dir, folder)
    contract = ScoringContract(max_length=MAX_LENGTH, query_max_length=QUERY_MAX_LENGTH, model_max_length=128)
    config, tokenizer = AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    contract.write_native(config, tokenizer)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    contract.write(folder)
    (folder / "README.md").write_text("# model\n\n## Scoring\n\nthe logit\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_xlmr"])
def onnx_export(request, tmp_path_factory) -> Path:
    """Each tiny export (BERT with token_type_ids, XLM-R without) with float32 and int8 ONNX files."""
    folder = make_export(request.getfixturevalue(request.param), tmp_path_factory.mktemp(request.param))
    export_onnx(folder, quantize="int8")
    return folder


@pytest.mark.slow
def test_onnx_float32_scores_as_torch_under_the_recorded_contract(onnx_export):
    torch_scores = Reranker(onnx_export, device="cpu").score(PAIRS)
    onnx = Reranker(onnx_export, backend="onnx")
    assert (onnx.max_length, onnx.query_max_length) == (MAX_LENGTH, QUERY_MAX_LENGTH)
    onnx_scores = onnx.score(PAIRS, batch_size=3)
    assert onnx_scores == pytest.approx(torch_scores, abs=1e-4)
    # The contract is exercised: other lengths give other scores for these pairs.
    uncut = Reranker(onnx_export, backend="onnx", max_length=64, query_max_length=32).score(PAIRS)
    assert max(abs(a - b) for a, b in zip(uncut, onnx_scores, strict=True)) > 1e-2
    assert onnx.score(PAIRS, normalize="sigmoid") == pytest.approx(
        torch.sigmoid(torch.tensor(torch_scores)).tolist(), abs=1e-4
    )
    assert sorted(onnx_scores)[-1] - sorted(onnx_scores)[0] > 0.5  # scores spread enough to rank


@pytest.mark.slow
def test_onnx_int8_is_close_and_ranks_alike(onnx_export):
    float32 = Reranker(onnx_export, backend="onnx").score(PAIRS)
    int8 = Reranker(onnx_export, backend="onnx", onnx_file=QUANTIZED_FILE).score(PAIRS)
    assert int8 != float32  # the quantised graph, not the float32 one
    mean_error = sum(abs(a - b) for a, b in zip(int8, float32, strict=True)) / len(PAIRS)
    assert mean_error < INT8_MAX_MEAN_ERROR_SHARE * (max(float32) - min(float32))
    assert spearmanr(int8, float32).statistic > INT8_MIN_SPEARMAN
    card = (onnx_export / "README.md").read_text(encoding="utf-8")
    assert card.count("## ONNX") == 1 and QUANTIZED_FILE in card and "## Scoring" in card


@pytest.mark.slow
def test_a_path_to_an_onnx_file_runs_that_file(onnx_export, tmp_path):
    """``EXPORT/onnx/FILE.onnx`` wherever a model path goes (``Reranker``, ``evaluate --model``)."""
    int8 = Reranker(onnx_export, backend="onnx", onnx_file=QUANTIZED_FILE).score(PAIRS)
    float32 = Reranker(onnx_export, backend="onnx").score(PAIRS)
    assert Reranker(onnx_export / "onnx" / QUANTIZED_FILE).score(PAIRS) == int8 != float32
    assert Reranker(str(onnx_export / "onnx" / ONNX_FILE)).score(PAIRS) == float32
    stray = tmp_path / ONNX_FILE
    shutil.copy(onnx_export / "onnx" / ONNX_FILE, stray)
    with pytest.raises(InputError, match=r"run from the onnx/ folder of its export"):
        Reranker(stray)
    with pytest.raises(InputError, match=r"contradicts it"):
        Reranker(onnx_export / "onnx" / ONNX_FILE, onnx_file=QUANTIZED_FILE)
    # evaluate: torch and int8 rows of one export on the same lists, with a paired test between them.
    records = [
        {"query": query, "pos": [PASSAGES[i]], "neg": PASSAGES[i + 1 : i + 6]}
        for i, query in enumerate((LONG_QUERY, SHORT_QUERY))
    ]
    triplets = tmp_path / "eval.jsonl"
    triplets.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    int8_file = onnx_export / "onnx" / QUANTIZED_FILE
    argv = [str(triplets), "--model", f"torch={onnx_export}", "--model", f"int8={int8_file}",
            "--compare", "torch", "int8", "--fusion", "none", "--samples", "100"]  # fmt: skip
    results = evaluate_main(argv)
    # int8 activations are quantised per batch, so a pair's int8 score depends on its batch: score the
    # pairs as evaluate does, all at once in batches of 32.
    pairs = [(r["query"], p) for r in records for p in r["pos"] + r["neg"]]
    for row, model in (("torch", Reranker(onnx_export, device="cpu")), ("int8", Reranker(int8_file))):
        scores, ranks = model.score(pairs, 32), []
        for group in (scores[:6], scores[6:]):  # the positive first
            ranks.append(1 + sum(score >= group[0] for score in group[1:]))  # ties count against it
        assert (row, results["per_query"][row]["rank"]) == (row, ranks)
    assert [(t["a"], t["b"]) for t in results["tests"]] == [("torch", "int8")] * 2
    with pytest.raises(SystemExit, match=r"^error: .*run from the onnx/ folder of its export"):
        evaluate_main([str(triplets), "--model", str(stray), "--fusion", "none"])


@pytest.mark.slow
@pytest.mark.integration
def test_sentence_transformers_cross_encoder_loads_the_onnx_files(onnx_export, tmp_path):
    # sentence-transformers 6 finds the files where the export puts them (its layout rules, run here) ...
    from sentence_transformers.backend.utils import backend_should_export

    for file_name in (ONNX_FILE, QUANTIZED_FILE):
        export, kwargs = backend_should_export(
            onnx_export, True, {"file_name": file_name}, ONNX_FILE, "*.onnx", "ONNX"
        )
        assert (export, kwargs) == (False, {"file_name": file_name, "subfolder": "onnx"})
    # ... and runs them through Optimum ONNX, which admits transformers < 4.58 only: the compat environment.
    if not COMPAT_PYTHON.exists():
        pytest.skip(f"missing test dependency: {COMPAT_PYTHON}; `make .venv-compat/.installed` builds it")
    # CrossEncoder cuts the longer text first and has no query_max_length: queries within it, so both cut
    # only the passage.
    pairs = [(SHORT_QUERY, passage) for passage in PASSAGES]
    tokenizer = AutoTokenizer.from_pretrained(onnx_export)
    assert len(tokenizer(SHORT_QUERY, add_special_tokens=False)["input_ids"]) <= QUERY_MAX_LENGTH
    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(json.dumps(pairs, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run(
        [
            str(COMPAT_PYTHON),
            str(COMPAT_SCRIPT),
            str(pairs_file),
            str(onnx_export),
            ONNX_FILE,
            QUANTIZED_FILE,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for file_name in (ONNX_FILE, QUANTIZED_FILE):
        assert loaded[file_name]["model_class"] == "ORTModelForSequenceClassification"
        assert Path(loaded[file_name]["model_path"]).name == file_name
        ours = Reranker(onnx_export, backend="onnx", onnx_file=file_name).score(pairs)
        assert loaded[file_name]["scores"] == pytest.approx(ours, abs=1e-4)  # raw logits: Identity
    torch_scores = Reranker(onnx_export, device="cpu").score(pairs)
    assert loaded[ONNX_FILE]["scores"] == pytest.approx(torch_scores, abs=1e-4)


@pytest.mark.slow
def test_onnx_files_of_other_weights_are_refused(onnx_export, tmp_path):
    stale = shutil.copytree(onnx_export, tmp_path / "stale")
    # The weights exported again (other values) after the ONNX files were written.
    model = AutoModelForSequenceClassification.from_pretrained(stale)
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    model.save_pretrained(stale)
    with pytest.raises(InputError, match=r"weights changed after the ONNX files were written") as err:
        Reranker(stale, backend="onnx")
    assert "\n" not in str(err.value) and f"reranker export {stale} --onnx" in str(err.value)
    # An ONNX file swapped for another, the weights unchanged.
    replaced = shutil.copytree(onnx_export, tmp_path / "replaced")
    shutil.copy(replaced / "onnx" / QUANTIZED_FILE, replaced / "onnx" / ONNX_FILE)
    with pytest.raises(InputError, match=r"onnx\.model\.onnx: .* is not the file written with these weights"):
        Reranker(replaced, backend="onnx")
    # No record at all.
    (replaced / "onnx" / FINGERPRINT_FILE).unlink()
    with pytest.raises(InputError, match=r"has no onnx/fingerprint\.json"):
        Reranker(replaced, backend="onnx")


@pytest.mark.slow
def test_an_export_without_onnx_names_the_command_that_writes_it(tiny_bert, tmp_path, capsys):
    folder = make_export(tiny_bert, tmp_path / "plain")
    with pytest.raises(InputError) as err:
        Reranker(folder, backend="onnx")
    message = str(err.value)
    assert f"has no onnx/{ONNX_FILE}" in message and f"reranker export {folder} --onnx" in message
    # The command it names writes the files, and the export then scores through them.
    export_main([str(folder), "--onnx"])
    assert capsys.readouterr().out.strip() == f"wrote {folder / 'onnx' / ONNX_FILE}"
    assert Reranker(folder, backend="onnx").score(PAIRS) == pytest.approx(
        Reranker(folder, device="cpu").score(PAIRS), abs=1e-4
    )
    with pytest.raises(InputError, match=f"has no onnx/{QUANTIZED_FILE}"):
        Reranker(folder, backend="onnx", onnx_file=QUANTIZED_FILE)


@pytest.mark.slow
def test_int8_export_leaves_nothing_in_the_working_directory(tiny_bert, tmp_path, monkeypatch):
    folder = make_export(tiny_bert, tmp_path / "plain")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    export_main([str(folder), "--onnx", "--quantize", "int8"])
    assert (folder / "onnx" / QUANTIZED_FILE).is_file() and list(work.iterdir()) == []


@pytest.mark.slow
def test_an_export_folder_given_by_a_relative_path_gets_its_onnx_files(tiny_bert, tmp_path, monkeypatch):
    make_export(tiny_bert, tmp_path / "runs" / "export")
    monkeypatch.chdir(tmp_path)
    export_main(["runs/export", "--onnx"])
    assert Reranker("runs/export/onnx/model.onnx").score(PAIRS) == Reranker(
        "runs/export", backend="onnx"
    ).score(PAIRS)


@pytest.mark.slow
def test_a_checkpoint_exports_with_onnx_files(tmp_path, capsys):
    out = tmp_path / "export"
    export_main([str(OLD_CHECKPOINT), "--out", str(out), "--onnx", "--quantize", "int8"])
    assert sorted(path.name for path in (out / "onnx").iterdir()) == sorted(
        [ONNX_FILE, QUANTIZED_FILE, FINGERPRINT_FILE]
    )
    assert "## ONNX" in (out / "README.md").read_text(encoding="utf-8")
    # Its model has 64 positions: pairs that fit them.
    pairs = [(SHORT_QUERY, passage.split("다 ")[0]) for passage in PASSAGES]
    assert Reranker(out, backend="onnx").score(pairs) == pytest.approx(
        Reranker(out, device="cpu").score(pairs), abs=1e-4
    )


def test_decoder_kinds_are_refused_naming_what_is_supported(tmp_path):
    folder = build_tiny_qwen3(tmp_path / "qwen3")
    kind = ModelKind(form="yes_no", query_template="Q: {query}", passage_template="\nP: {passage}\nA:")
    (tmp_path / "qwen3" / "reranker.json").write_text(json.dumps({"kind": kind.to_config()}))
    expected = r"ONNX supports encoder cross-encoders only .* this model is a YesNoDecoder"
    with pytest.raises(InputError, match=expected):
        Reranker(folder, backend="onnx")
    with pytest.raises(SystemExit, match=f"^error: .*{expected}"):
        export_main([folder, "--onnx"])
    assert not (tmp_path / "qwen3" / "onnx").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{ckpt}", "--out", "{tmp}/x", "--quantize", "int8"], "quantize applies to the ONNX files"),
        (["{ckpt}", "--out", "{tmp}/x", "--onnx", "--adapter-only"], "leave out adapter_only"),
        (["{ckpt}", "--onnx"], "--out is required"),
        (["{tmp}", "--quantize", "int8"], "give --onnx"),
    ],
)
def test_export_cli_errors_are_one_line_and_write_nothing(argv, message, tmp_path):
    argv = [arg.format(ckpt=OLD_CHECKPOINT, tmp=tmp_path) for arg in argv]
    with pytest.raises(SystemExit) as err:
        export_main(argv)
    assert str(err.value).startswith("error: ") and message in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bad_backend_arguments(onnx_export):
    for kwargs, message in [
        ({"backend": "tensorrt"}, "backend must be one of torch, onnx"),
        ({"onnx_file": ONNX_FILE}, "onnx_file applies to backend='onnx'"),
        ({"backend": "onnx", "dtype": "float16"}, "dtype must be None"),
    ]:
        with pytest.raises(InputError, match=message):
            Reranker(onnx_export, **kwargs)
    with pytest.raises(InputError, match=r"not a checkpoint: reranker export .* --out DIR --onnx"):
        Reranker(OLD_CHECKPOINT, backend="onnx")


@pytest.mark.slow
def test_the_float32_graph_is_fused_and_says_so(onnx_export):
    """ONNX Runtime's fused attention (one Attention node a layer) is what makes ONNX faster than torch."""
    import onnx

    record = json.loads((onnx_export / "onnx" / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    layers = AutoConfig.from_pretrained(onnx_export).num_hidden_layers
    assert record["graph"]["exporter"] == "torchscript"
    assert record["graph"]["fused"]["operators"]["Attention"] == layers
    graph = onnx.load(str(onnx_export / "onnx" / ONNX_FILE)).graph
    assert sum(node.op_type == "Attention" for node in graph.node) == layers
    assert not list((onnx_export / "onnx").glob(".fused-*"))


def test_a_fused_graph_that_misses_the_logits_gives_way_to_the_unfused_one(tiny_xlmr, tmp_path, monkeypatch):
    from reranker.serving import onnx_export as onnx_export_module

    checked = onnx_export_module._check_logits

    def refuse_fused(model, features, path):
        if path.parent.name.startswith(".fused-"):
            raise InputError(f"{path}: the ONNX graph does not reproduce the model's logits")
        checked(model, features, path)

    monkeypatch.setattr(onnx_export_module, "_check_logits", refuse_fused)
    folder = make_export(tiny_xlmr, tmp_path / "export")
    export_onnx(folder)
    record = json.loads((folder / "onnx" / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    assert record["graph"]["fused"]["kept"] == "unfused" and "logits" in record["graph"]["fused"]["reason"]
    assert Reranker(folder, backend="onnx").score(PAIRS) == pytest.approx(
        Reranker(folder, device="cpu").score(PAIRS), abs=1e-4
    )
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == [FINGERPRINT_FILE, ONNX_FILE]
