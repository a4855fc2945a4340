"""Under CI a missing optional test dependency fails the run; elsewhere it skips."""

import pytest

INNER = """
import pytest

def test_needs_a_module():
    pytest.importorskip("no_such_module_for_reranker_tests")

def test_needs_an_environment():
    pytest.skip("missing test dependency: .venv-compat")

def test_skipped_for_another_reason():
    pytest.skip("not on this platform")
"""


@pytest.mark.parametrize("ci, outcomes", [("true", {"failed": 2, "skipped": 1}), ("false", {"skipped": 3})])
def test_a_missing_test_dependency_fails_only_under_ci(ci, outcomes, pytester, monkeypatch):
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("CI", ci)
    pytester.runpytest_inprocess("-p", "ci_guard").assert_outcomes(**outcomes)
