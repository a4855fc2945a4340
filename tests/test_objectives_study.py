"""experiments/objectives: the driver trains each pending unit once and skips done ones, reruns a missing or
stale result, retrains a teacher whose export is gone; the report's tests and partial tables."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import TOPICS, make_records, teacher_score, write_jsonl

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments" / "objectives"))
import report  # noqa: E402
import study  # noqa: E402
from study_arms import choose_temperature, plan  # noqa: E402
from study_unit import curve_summary  # noqa: E402

# A tiny run: groups of 3, two steps, validation at step 2 (every arm has the same budget).
TINY = [
    "data.group_size=3",
    "data.batch_size=4",
    "data.val_batch_size=4",
    "data.max_length=64",
    "data.num_workers=0",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
]


def build_data(folder: Path) -> Path:
    """The study's data layout on the fixture records: first-stage-scored triplets and validation lists, an
    evaluation corpus and one first stage's top-4 lists (each holding its gold)."""
    records = [
        {
            **r,
            "pos_first_stage": [teacher_score(t) / 10 for t in r["pos"]],
            "neg_first_stage": [teacher_score(t) / 10 for t in r["neg"]],
        }
        for r in make_records()
    ]
    (folder / "eval").mkdir(parents=True)
    (folder / "lists").mkdir()
    write_jsonl(folder / "train.jsonl", records[::2] + records[1::4])
    write_jsonl(folder / "val.jsonl", records[3::4])
    texts = [text for sentences in TOPICS.values() for text in sentences]
    ids = {text: f"p{i}" for i, text in enumerate(texts)}
    write_jsonl(folder / "eval" / "corpus.jsonl", [{"id": ids[t], "text": t} for t in texts])
    lists = []
    for n, record in enumerate(make_records()):
        gold = ids[record["pos"][0]]
        others = [ids[t] for t in texts if ids[t] != gold][n % 5 :: 4][:3]
        candidates = others[: n % 3] + [gold] + others[n % 3 :]
        scores = [4.0 - i for i in range(len(candidates))]
        lists.append({"qid": f"q{n}", "query": record["query"], "pos_ids": [gold], "candidate_ids": candidates,
                      "candidate_scores": scores})  # fmt: skip
    write_jsonl(folder / "lists" / "hybrid.jsonl", lists)
    return folder


def make_study(tmp_path: Path, model: str, arms: list[str], seeds: tuple[int, ...]) -> study.Study:
    return study.Study(
        arms=arms,
        seeds=seeds,
        steps=2,
        grid=(0.5, 2.0),
        work=tmp_path / "work",
        results=tmp_path / "results",
        data_folder=tmp_path / "data",
        base_model=Path(model),
        overrides=TINY,
    )


def names(*units: str) -> list[str]:
    return [f"korquad/{unit}" for unit in units]


@pytest.mark.slow
def test_the_driver_trains_what_is_pending_once_and_reruns_only_what_is_missing_or_stale(
    tiny_bert, tmp_path, capsys
):
    build_data(tmp_path / "data")
    driver = make_study(tmp_path, tiny_bert, ["group_ce", "first_stage_only", "mix"], (1, 2))
    results = tmp_path / "results" / "korquad"
    # A budget too small for any unit starts none.
    assert driver.run(max_minutes=0.01) == [] and not results.exists()
    assert "budget: korquad/group_ce/seed1 needs about" in capsys.readouterr().out

    # Every pending unit, in order: the baseline, the temperature grid (seed 1), then the arms that use the
    # chosen temperature; the first_stage_only run at seed 1 is the chosen grid run, copied, not retrained.
    trained = driver.run()
    assert trained == names(
        "group_ce/seed1", "group_ce/seed2", "first_stage_only_t0.5/seed1", "first_stage_only_t2/seed1",
        "first_stage_only/seed2", "mix/seed1", "mix/seed2",
    )  # fmt: skip
    selection = json.loads((results / "selection.json").read_text())
    chosen = selection["chosen"]
    assert chosen in (0.5, 2.0) and selection["grid"] == [0.5, 2.0]
    copied = json.loads((results / "first_stage_only" / "seed1.json").read_text())
    assert copied["copied_from"] == f"korquad/first_stage_only_t{chosen:g}/seed1"
    mix = json.loads((results / "mix" / "seed2.json").read_text())
    assert f"loss.components.teacher.teacher_temperature={chosen:g}" in mix["overrides"]
    assert mix["training"]["steps"] == 2 and set(mix["training"]["components"]) == {"label", "teacher"}
    entry = mix["evaluation"]["hybrid"]
    assert entry["qids"] == [f"q{n}" for n in range(18)]
    assert (
        len(entry["reranker"]["rank"]) == len(entry["fused"]["rr"]) == len(entry["first_stage"]["rr"]) == 18
    )
    assert not (tmp_path / "work" / "runs" / "korquad" / "mix" / "seed2").exists()  # gone once recorded

    # Nothing left: a rerun trains nothing.
    assert driver.run() == []
    assert all(line.startswith("done") for line in driver.status()[:-1])

    # A deleted result file: only that unit again.
    (results / "mix" / "seed2.json").unlink()
    assert driver.run() == names("mix/seed2")

    # A result made from another data build: that unit again, and the driver says why.
    path = results / "group_ce" / "seed1.json"
    result = json.loads(path.read_text())
    result["data"]["fingerprint"] = "0" * 64
    path.write_text(json.dumps(result))
    capsys.readouterr()
    assert driver.run() == names("group_ce/seed1")
    assert "korquad/group_ce/seed1: made from other data (fingerprint 000000000000" in capsys.readouterr().out


@pytest.mark.slow
def test_a_teacher_whose_export_is_gone_is_trained_again_before_its_student(tiny_bert, tmp_path):
    build_data(tmp_path / "data")
    driver = make_study(tmp_path, tiny_bert, ["distill_kl"], (1,))
    assert driver.run() == names("teacher/seed42", "distill_kl/seed1")
    student = json.loads((tmp_path / "results" / "korquad" / "distill_kl" / "seed1.json").read_text())
    assert student["teacher_data"]["train_digest"] and student["evaluation"]["hybrid"]["queries"] == 18
    teacher = json.loads((tmp_path / "results" / "korquad" / "teacher" / "seed42.json").read_text())
    assert teacher["training"]["steps"] == 8  # four times the arms' budget
    # A new session: the work folder is gone but the result files are committed.
    shutil.rmtree(tmp_path / "work")
    (tmp_path / "results" / "korquad" / "distill_kl" / "seed1.json").unlink()
    assert driver.run() == names("teacher/seed42", "distill_kl/seed1")
    assert (
        tmp_path / "work" / "runs" / "korquad" / "teacher" / "seed42" / "export" / "config.json"
    ).is_file()


def test_the_plan_waits_for_the_temperature_and_the_choice_is_made_on_validation():
    units = plan("korquad", ["group_ce", "mix"], (1, 2), 8, (0.3, 1.0), None)
    assert [u.arm for u in units] == [
        "group_ce",
        "group_ce",
        "first_stage_only_t0.3",
        "first_stage_only_t1",
        "mix",
        "mix",
    ]
    assert [u.waiting for u in units][-2:] == ["the teacher temperature grid"] * 2
    assert units[2].overrides[-2:] == ("trainer.max_steps=8", "seed=1")
    assert choose_temperature((0.3, 1.0), {0.3: 0.7, 1.0: None}) is None
    assert choose_temperature((0.3, 1.0, 3.0), {0.3: 0.7, 1.0: 0.8, 3.0: 0.8}) == 1.0  # the first on a tie


def test_the_curve_summary_finds_where_the_loss_left_its_plateau():
    rows = [{"step": str(s - 1), "train/loss": str(v)} for s, v in ((1, 2.08), (2, 1.9), (3, 1.8), (4, 1.5))]
    rows += [{"step": "3", "val/mrr@10": "0.5"}, {"step": "4", "val/mrr@10": "0.5"}]  # the second: after fit
    summary = curve_summary(rows, 8)
    assert summary["first_loss"] == 2.08 and summary["last_loss"] == 1.5
    assert summary["left_plateau_at_step"] == 3  # 1.8 <= 0.9 * 2.08 < 1.9
    assert summary["val_curve"] == [(4, 0.5)]


def fake_result(arm: str, seed: int, rr: list[float], fingerprint: str = "a" * 64) -> dict:
    first_stage = [1.0, 0.5, 0.5, 0.0]
    mean = sum(rr) / len(rr)
    entry = {
        "qids": ["q1", "q2", "q3", "q4"],
        "first_stage": {"rank": [1, 2, 2, 0], "rr": first_stage},
        "reranker": {"rank": [0] * 4, "rr": rr},
        "fused": {"rank": [0] * 4, "rr": rr},
        "mrr@10": {"first_stage": 0.5, "reranker": mean, "fused": mean},
    }
    return {"domain": "korquad", "arm": arm, "seed": seed, "data": {"fingerprint": fingerprint},
            "training": {}, "validation": {"val/mrr@10": mean}, "evaluation": {"hybrid": entry}}  # fmt: skip


def test_the_report_tests_seed_means_holm_adjusts_them_and_shows_partial_results(tmp_path):
    results = tmp_path / "results"
    files = {
        ("group_ce", 1): [1.0, 0.5, 0.0, 0.0],
        ("group_ce", 2): [1.0, 0.5, 0.5, 0.0],
        ("mix", 1): [1.0, 1.0, 1.0, 0.5],
        ("mix", 2): [1.0, 1.0, 0.5, 0.5],
        ("mix", 3): [1.0, 1.0, 1.0, 1.0],
    }
    for (arm, seed), rr in files.items():
        path = results / "korquad" / arm / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fake_result(arm, seed, rr)))
    (results / "korquad" / "bce").mkdir()
    (results / "korquad" / "bce" / "seed1.json").write_text(
        json.dumps(fake_result("bce", 1, [0.0] * 4, "b" * 64))
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{report.START}\nold\n{report.END}\nafter\n")
    summary = report.main(["--results", str(results), "--readme", str(readme), "--plot", str(tmp_path / "mrr.png"),
                           "--samples", "200"])  # fmt: skip
    mix = summary["korquad"]["hybrid"]["arms"]["mix"]
    # Seed means per query: mix [1, 1, 5/6, 2/3], group_ce [1, .5, .25, 0], the first stage [1, .5, .5, 0].
    assert mix["vs group_ce"]["difference"] == pytest.approx((1 + 1 + 5 / 6 + 2 / 3) / 4 - 1.75 / 4)
    assert mix["vs first stage"]["difference"] == pytest.approx((1 + 1 + 5 / 6 + 2 / 3) / 4 - 0.5)
    assert mix["vs group_ce"]["seeds agreeing"] == 3
    tests = [
        row[c]
        for row in summary["korquad"]["hybrid"]["arms"].values()
        for c, *_ in report.COMPARISONS
        if c in row
    ]
    assert len(tests) == 5 and [t["holm_p"] for t in tests] == report.holm([t["p_value"] for t in tests])
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| group_ce (2 of 3 seeds) |" in text and "| lambdaloss | no result yet |" in text
    assert "left out, made from another data build: bce/seed1" in text
    # Four queries cannot show a difference; an arm with fewer seeds than the study runs is not judged yet.
    assert text.count("3/3 seeds: **no difference shown**") == 3  # mix, its three comparisons
    assert text.count("seeds: **pending (2 of 3 seeds)**") == 2  # group_ce against the first stage
    assert "Partial (5 of " in text and "Against group_ce: no difference shown: mix." in text
    assert (
        "Alone against hybrid alone: not judged yet (too few seeds): group_ce; no difference shown: mix."
        in text
    )
    assert (tmp_path / "mrr.png").stat().st_size > 0


def test_holm_multiplies_the_ordered_p_values_and_keeps_them_monotone():
    assert report.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert report.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_a_result_is_done_only_with_the_current_fingerprint_and_overrides():
    (unit,) = plan("korquad", ["bce"], (3,), 8, (1.0,), None)
    result = {"data": {"fingerprint": "f" * 64}, "overrides": ["loss=bce", "trainer.max_steps=8", "seed=3"]}
    assert study.results_io.state(unit, result, "f" * 64) == ("done", "")
    assert study.results_io.state(unit, None, "f" * 64) == ("pending", "no result file")
    assert study.results_io.state(unit, result, "e" * 64)[0] == "stale"
    other = {**result, "overrides": ["loss=bce", "trainer.max_steps=16", "seed=3"]}
    assert study.results_io.state(unit, other, "f" * 64) == (
        "stale",
        "made with other overrides (loss=bce trainer.max_steps=16 seed=3)",
    )


def test_the_data_build_runs_the_project_commands_with_options_they_accept(tmp_path):
    from study_data import build_commands

    from reranker.preparation.prepare import parse_args

    commands = build_commands(
        tmp_path / "d", tmp_path / "shared", tmp_path / "me5", tmp_path / "emb", "python"
    )
    parsed = [vars(parse_args(command[3:])) for command in commands]
    assert [p["command"] for p in parsed] == ["squad", "candidates", "candidates"]
    assert parsed[0]["first_stage_scores"] and parsed[0]["retriever"] == "hybrid"
    assert [p["retriever"] for p in parsed[1:]] == ["hybrid", "dense"]
    assert all(p["top_k"] == 10 and p["query_prefix"] == "query: " for p in parsed[1:])


def test_status_before_the_data_is_built_judges_results_by_their_recorded_fingerprint(tmp_path):
    driver = study.Study(
        arms=["bce"], seeds=(1, 2), steps=8, work=tmp_path / "work", results=tmp_path / "results"
    )
    assert driver.status()[-1].endswith(
        "data not built here (" + str(tmp_path / "work" / "data" / "korquad") + ") and no result file yet"
    )
    (unit, _) = plan("korquad", ["bce"], (1, 2), 8, (1.0,), None)
    path = unit.result_path(tmp_path / "results")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"data": {"fingerprint": "c" * 64}, "overrides": list(unit.overrides)}))
    lines = driver.status()
    assert lines[:2] == ["done     korquad/bce/seed1", "pending  korquad/bce/seed2  (no result file)"]
    assert lines[-1].startswith("1 done, 1 pending, 0 stale, 0 waiting; data not built here")
    assert "judged by the fingerprint cccccccccccc" in lines[-1]
    assert not (tmp_path / "work").exists()  # status builds nothing
