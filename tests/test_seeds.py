"""Seeds in ``reranker evaluate``: several runs of one system (a ``--model`` name repeated, or a glob), a row
per run and the system's mean, tests of per-query seed means with the seeds that agree, Holm-adjusted
p-values (against values worked by hand) and the verdict words; runs that score differently are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_jsonl
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from reranker.evaluation.evalsets import EvalSet
from reranker.evaluation.evaluate import main
from reranker.evaluation.significance import holm, verdict
from reranker.evaluation.tables import FIRST_STAGE, evaluate
from reranker.model.contract import ScoringContract

CORPUS = [
    {"id": f"p{i}", "text": f"문서 {i}번 내용 {'서울 부산 김치 축구 태양 바다'.split()[i % 6]}"}
    for i in range(8)
]
QUERIES = [
    {"qid": f"q{n}", "query": f"질문 {n} {'서울 부산 김치 축구 태양 바다'.split()[n % 6]}",
     "candidate_ids": [f"p{(n + j) % 8}" for j in range(4)], "pos_ids": [f"p{(n + n % 3) % 8}"]}
    for n in range(8)
] + [{"qid": "missed", "query": "질문 8", "candidate_ids": ["p0", "p1", "p2"], "pos_ids": ["p7"]}]  # fmt: skip


@pytest.fixture(scope="module")
def seed_runs(tiny_bert, tmp_path_factory) -> Path:
    """``outputs/seed1/export`` and ``outputs/seed2/export``: the tiny BERT initialised from two seeds, with
    wide random weights so that their rankings differ."""
    root = tmp_path_factory.mktemp("seeds")
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = root / "outputs" / f"seed{seed}" / "export"
        config = AutoConfig.from_pretrained(tiny_bert, initializer_range=0.3)
        AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return root


def test_holm_adjusts_as_computed_by_hand():
    # Sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1; one test is left as it is.
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([0.2]) == [0.2]
    assert holm([]) == []


def test_verdict_words():
    assert verdict(0.1, 0.01, 3, 3) == "better" and verdict(-0.1, 0.049, 2, 2) == "worse"
    assert verdict(0.1, 0.01, 2, 3) == "no difference shown"  # a seed disagrees
    assert verdict(0.1, 0.05, 3, 3) == "no difference shown"  # not below 0.05
    assert verdict(0.0, 0.01, 1, 1) == "no difference shown"


def seeds_set() -> tuple[EvalSet, dict[str, list[float]]]:
    """10 queries of 3 candidates, the gold second in first-stage order. Seed a ranks every gold first;
    seed b ranks 8 second (as the first stage) and 2 third."""
    queries = [f"q{i}" for i in range(10)]
    eval_set = EvalSet(queries, queries, [["x", "gold", "y"] for _ in queries], [[False, True, False]] * 10)
    seed_a = [0.0, 1.0, -1.0] * 10
    seed_b = [1.0, 0.0, -1.0] * 8 + [1.0, -2.0, 0.0] * 2
    return eval_set, {FIRST_STAGE: eval_set.first_stage_scores(), "ft (a)": seed_a, "ft (b)": seed_b}


def test_seed_rows_mean_agreement_and_holm_by_hand():
    eval_set, runs = seeds_set()
    systems = {"ft": ["ft (a)", "ft (b)"]}
    results = evaluate(eval_set, runs, [(FIRST_STAGE, "ft")], systems=systems, samples=2000)
    assert list(results["table"]) == [FIRST_STAGE, "ft (a)", "ft (b)", "ft"]
    # MRR: first stage 1/2; seed a 1; seed b (8 x 1/2 + 2 x 1/3) / 10; the system their mean.
    seed_b = (8 / 2 + 2 / 3) / 10
    assert results["table"]["ft (b)"]["mrr@10"] == pytest.approx(seed_b)
    assert results["table"]["ft"]["mrr@10"] == pytest.approx((1 + seed_b) / 2)
    assert results["per_query"]["ft"]["mrr@10"] == pytest.approx([0.75] * 8 + [(1 + 1 / 3) / 2] * 2)
    assert "rank" not in results["per_query"]["ft"] and results["per_query"]["ft (b)"]["rank"][-1] == 3
    mrr, hit = results["tests"]
    # Every query's seed mean beats the first stage: p at the permutation test's floor, well below 0.05.
    assert mrr["difference"] == pytest.approx((1 + seed_b) / 2 - 1 / 2) and mrr["p_value"] < 0.01
    # Seed b alone is worse on MRR (-1/30) and level on hit@1: one seed of two agrees with each.
    assert (mrr["seeds_agreeing"], mrr["seeds"]) == (1, 2) and (hit["seeds_agreeing"], hit["seeds"]) == (1, 2)
    assert [t["p_holm"] for t in results["tests"]] == pytest.approx(holm([mrr["p_value"], hit["p_value"]]))
    assert mrr["p_holm"] < 0.05 and mrr["verdict"] == hit["verdict"] == "no difference shown"
    # With seed b dropped, the one seed agrees: better.
    alone = evaluate(eval_set, {k: v for k, v in runs.items() if k != "ft (b)"}, [(FIRST_STAGE, "ft (a)")])
    assert [t["verdict"] for t in alone["tests"]] == ["better", "better"]


def test_two_seeds_as_one_system_from_a_repeated_name_or_a_glob(seed_runs, tmp_path, capsys):
    data = write_jsonl(tmp_path / "q.jsonl", QUERIES)
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    common = [str(data), "--corpus", str(corpus), "--max-length", "32", "--samples", "500"]
    exports = [seed_runs / "outputs" / f"seed{seed}" / "export" for seed in (1, 2)]
    results = main([*common, *(f"--model=ft={path}" for path in exports), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    runs, fused = ["ft (seed1)", "ft (seed2)"], ["ft (seed1) fused", "ft (seed2) fused"]
    assert list(results["table"]) == [FIRST_STAGE, *runs, "ft", *fused, "ft fused"]
    assert results["systems"]["ft"] == runs and results["systems"]["ft fused"] == fused
    assert results["paths"] == {"ft (seed1)": str(exports[0]), "ft (seed2)": str(exports[1])}
    for system, members in (("ft", runs), ("ft fused", fused)):
        for metric in results["metrics"]:
            values = [results["table"][run][metric] for run in members]
            assert results["table"][system][metric] == pytest.approx(sum(values) / 2)
            columns = [results["per_query"][run][metric] for run in members]
            assert results["per_query"][system][metric] == pytest.approx(
                [(x + y) / 2 for x, y in zip(*columns, strict=True)]
            )
    assert results["per_query"]["ft (seed1)"] != results["per_query"]["ft (seed2)"]  # two different runs
    tests = results["tests"]
    assert [(t["a"], t["b"]) for t in tests[::2]] == [
        (FIRST_STAGE, "ft"),
        (FIRST_STAGE, "ft fused"),
        ("ft", "ft fused"),
    ]
    assert [t["p_holm"] for t in tests] == pytest.approx(holm([t["p_value"] for t in tests]))
    for test in tests:
        assert test["seeds"] == 2 and test["verdict"] == verdict(
            test["difference"], test["p_holm"], test["seeds_agreeing"], test["seeds"]
        )
        a, b = (results["per_query"][name][test["metric"]] for name in (test["a"], test["b"]))
        assert test["difference"] == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
    # The missed query is a miss for every run, mean and fused row alike.
    assert all(results["per_query"][row]["mrr@10"][-1] == 0.0 for row in results["table"])
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["tests"] == tests and written["per_query"]["ft"] == results["per_query"]["ft"]
    report = (tmp_path / "out" / "results.md").read_text()
    assert (
        "| ft (mean of 2) |" in report and "| ft (seed2) fused |" in report and "| seeds agreeing |" in report
    )
    assert "ft (mean of 2)" in printed and f"{tests[0]['seeds_agreeing']}/2" in printed
    # A glob gives the same system.
    globbed = main([*common, "--model", f"ft={seed_runs}/outputs/*/export"])
    assert globbed["table"] == results["table"] and globbed["tests"] == tests


def test_runs_that_score_differently_or_repeat_are_refused_in_one_line(seed_runs, tmp_path):
    data = write_jsonl(tmp_path / "q.jsonl", QUERIES)
    common = [
        str(data),
        "--corpus",
        str(write_jsonl(tmp_path / "c.jsonl", CORPUS)),
        "--out",
        str(tmp_path / "out"),
    ]
    exports = [tmp_path / f"run{seed}" for seed in (1, 2)]
    seeds = [seed_runs / "outputs" / f"seed{seed}" / "export" for seed in (1, 2)]
    for export, max_length in zip(exports, (32, 64), strict=True):
        AutoTokenizer.from_pretrained(seed_runs / "outputs" / "seed1" / "export").save_pretrained(export)
        ScoringContract(max_length=max_length).write(export)
    cases = [
        ([f"--model=ft={path}" for path in exports],
         rf"^error: --model ft: its runs score differently, so they are not one system: max_length 32 "
         rf"\({exports[0]}\) vs 64 \({exports[1]}\)$"),
        ([f"--model=ft={exports[0]}", f"--model=ft={exports[0]}"], rf"^error: --model ft: the path {exports[0]} is given twice$"),
        ([f"--model=ft={tmp_path}/none-*/export"], r"^error: --model ft=.*none-\*/export: the pattern matches no path$"),
        ([f"--model=ft={path}" for path in seeds] + [f"--model=ft (seed1)={seeds[0]}"], r"^error: --model: the row 'ft \(seed1\)'"),
    ]  # fmt: skip
    for models, message in cases:
        with pytest.raises(SystemExit, match=message) as stopped:
            main([*common, *models])
        assert "\n" not in str(stopped.value.code)
    assert not (tmp_path / "out").exists()


def test_the_verdict_reads_the_holm_adjusted_p_value():
    # 6 queries, each gold lifted from second to first: p = 2/64 alone, doubled by Holm over the 2 tests.
    queries = [f"q{i}" for i in range(6)]
    eval_set = EvalSet(queries, queries, [["x", "gold"] for _ in queries], [[False, True]] * 6)
    runs = {FIRST_STAGE: eval_set.first_stage_scores(), "m": [0.0, 1.0] * 6}
    tests = evaluate(eval_set, runs, [(FIRST_STAGE, "m")], samples=20000)["tests"]
    for test in tests:
        assert (
            test["p_value"] == pytest.approx(2 / 64, abs=0.005)
            and test["seeds_agreeing"] == test["seeds"] == 1
        )
        assert (
            test["p_holm"] == pytest.approx(2 * test["p_value"]) and test["verdict"] == "no difference shown"
        )
