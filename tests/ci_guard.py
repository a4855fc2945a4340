"""Under CI (``CI`` set and not ``false``/``0``), a test skipped for a missing dependency fails instead:
CI installs every test dependency, so a skip there would hide the check it stands for.

Loaded by ``conftest.py``; a test that needs an optional package uses ``pytest.importorskip``, or
``pytest.skip(f"{MISSING} ...")`` for one that is not a module (a second environment).
"""

from __future__ import annotations

import os

import pytest

MISSING = "missing test dependency:"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and call.excinfo is not None and in_ci():
        reason = str(call.excinfo.value)
        if reason.startswith(("could not import", MISSING)):  # pytest.importorskip's reason, or ours
            report.outcome = "failed"
            report.longrepr = f"under CI a missing test dependency fails the run: {reason}"
