"""Every figure the READMEs quote comes from a committed result file (``scripts/figures.py``)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each test reads every committed result file: seconds.
pytestmark = pytest.mark.slow


@pytest.fixture
def figures():
    spec = importlib.util.spec_from_file_location("figures_script", ROOT / "scripts" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_quoted_figure_matches_the_committed_results(figures, capsys):
    assert figures.main(["--check"]) == 0, capsys.readouterr().err


def copy_of_the_project(tmp_path: Path, figures) -> Path:
    """The documents, the experiments and the figures script, in a folder the check can be pointed at."""
    for name in ("README.md", "docs", "experiments", "scripts", "benchmarks"):
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(
            source, tmp_path / name, **({"ignore": shutil.ignore_patterns("work")} if source.is_dir() else {})
        )
    figures.ROOT = tmp_path
    figures.generator.cache_clear()
    figures.known_values.cache_clear()
    return tmp_path


def test_a_figure_edited_by_hand_in_a_generated_table_fails(figures, tmp_path, capsys):
    root = copy_of_the_project(tmp_path, figures)
    readme = root / "experiments" / "korquad" / "README.md"
    text = readme.read_text(encoding="utf-8")
    row = "| without reranker | 0.7845 |"  # BM25's end-to-end MRR@10 in the generated table
    assert row in text
    readme.write_text(text.replace(row, "| without reranker | 0.7910 |"), encoding="utf-8")
    assert figures.main(["--check"]) == 1
    assert "+| without reranker | 0.7845 |" in capsys.readouterr().err  # the diff shows the generated row


def test_a_quoted_figure_no_result_holds_fails(figures, tmp_path, capsys):
    root = copy_of_the_project(tmp_path, figures)
    readme = root / "experiments" / "korquad" / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert "BM25 alone scores MRR@10 0.7845." in text
    known = figures.known_values(readme)
    wrong = next(f"{v / 10000:.4f}" for v in range(7001, 8000) if f"{v / 10000:.4f}" not in known)
    readme.write_text(text.replace("BM25 alone scores MRR@10 0.7845.", f"BM25 alone scores MRR@10 {wrong}."))
    figures.known_values.cache_clear()
    assert figures.main(["--check"]) == 1
    assert f"'{wrong}'" in capsys.readouterr().err


def test_regenerating_restores_a_generated_table(figures, tmp_path):
    root = copy_of_the_project(tmp_path, figures)
    readme = root / "README.md"
    original = readme.read_text(encoding="utf-8")
    start = original.index("<!-- figures experiments/demo/report.py:table -->")
    readme.write_text(original[:start] + original[start:].replace("| 42 (default) |", "| 42 |", 1))
    assert figures.main([]) == 0
    assert readme.read_text(encoding="utf-8") == original


def test_only_a_section_marked_as_recorded_by_hand_is_left_out_of_the_check(figures, tmp_path, capsys):
    root = copy_of_the_project(tmp_path, figures)
    readme = root / "benchmarks" / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.index("<!-- recorded by hand: "), text.index("<!-- /recorded by hand -->")
    known = figures.known_values(readme)
    wrong = next(f"{v / 1000:.3f}" for v in range(1001, 2000) if f"{v / 1000:.3f}" not in known)
    inside = text[:start] + text[start:end].replace("\n\n", f"\n\nA figure {wrong} s.\n\n", 1) + text[end:]
    readme.write_text(inside, encoding="utf-8")
    assert figures.main(["--check"]) == 0, capsys.readouterr().err
    outside = text[:start] + f"A figure {wrong} s.\n\n" + text[start:]
    readme.write_text(outside, encoding="utf-8")
    figures.known_values.cache_clear()
    assert figures.main(["--check"]) == 1
    assert f"'{wrong}'" in capsys.readouterr().err
