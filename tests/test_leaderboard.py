import csv
import json

import pytest
import yaml

from reranker.evaluation.leaderboard import main

RUNS = {
    "0": (["model.lr=1e-5", "data.group_size=4", "experiment=demo_ko"], 0.30),
    "1": (["model.lr=1e-4", "data.group_size=4", "experiment=demo_ko"], 0.50),
    "2": (["model.lr=1e-5", "data.group_size=8", "experiment=demo_ko"], 0.40),
    "3": (["model.lr=1e-3", "data.group_size=8", "experiment=demo_ko"], None),  # stopped: no metrics.json
}


def make_multirun(folder):
    for name, (overrides, mrr) in RUNS.items():
        hydra_dir = folder / name / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if mrr is not None:
            metrics = {"val/mrr@10": mrr, "val/hit@1": mrr / 2, "val/hit@3": mrr, "val/hit@5": 1.0}
            (folder / name / "metrics.json").write_text(json.dumps(metrics))
            (folder / name / "export").mkdir()
            (folder / name / "export" / "config.json").write_text("{}")
    return folder


@pytest.mark.slow
def test_leaderboard_sorts_by_mrr_lists_swept_values_and_plots(tmp_path, capsys):
    multirun = make_multirun(tmp_path / "multirun")
    main([str(multirun), "--out", str(tmp_path / "board")])

    rows = list(csv.DictReader((tmp_path / "board" / "leaderboard.csv").open()))
    assert [row["run"] for row in rows] == ["1", "2", "0", "3"]
    assert [row["rank"] for row in rows] == ["1", "2", "3", "not finished"]
    assert list(rows[0])[:4] == ["rank", "run", "model.lr", "data.group_size"]  # experiment= is not swept
    assert (rows[0]["model.lr"], rows[0]["data.group_size"], rows[0]["val/mrr@10"]) == ("1e-4", "4", "0.5000")
    assert (rows[0]["export"], rows[3]["export"]) == ("yes", "no")
    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| 1 | 1 | 1e-4 | 4 | 0.5000 |" in markdown and markdown in capsys.readouterr().out
    assert (tmp_path / "board" / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_runs_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match=f"error: {tmp_path}: no run folders"):
        main([str(tmp_path)])


def test_ranks_by_the_sweeps_optimized_metric(tmp_path):
    for name, (mrr5, hit1) in {"0": (0.9, 0.1), "1": (0.2, 0.8)}.items():
        hydra_dir = tmp_path / name / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump([f"model.lr={name}"]))
        # As Hydra saves it: unresolved, the way conf/train.yaml writes it.
        config = {"optimized_metric": "val/hit@${metrics.hit_k}", "metrics": {"hit_k": 1}}
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / name / "metrics.json").write_text(json.dumps({"val/hit@1": hit1, "val/mrr@5": mrr5}))
    main([str(tmp_path)])
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert [row["run"] for row in rows] == ["1", "0"]
    assert list(rows[0])[3:5] == ["val/hit@1", "val/mrr@5"]
    # --metric sorts by the metric named instead.
    main([str(tmp_path), "--metric", "val/mrr@5"])
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert [row["run"] for row in rows] == ["0", "1"]
    assert list(rows[0])[3] == "val/mrr@5"
