"""Result files: ``results/<domain>/<arm>/seed<N>.json``, one per unit of work, and whether a unit is done.

A unit is done when its result file exists, was made from data with the current fingerprint and with the
unit's current overrides (a changed teacher temperature or step budget makes it a new unit). Otherwise it
is pending, and a result file that is there but stale says why.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from study_arms import Unit

MRR = "mrr@10"
VAL_MRR = f"val/{MRR}"


def read(path: Path) -> dict | None:
    """The result file at ``path``, or None when there is none."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _inline_numbers(text: str) -> str:
    """Lists of numbers on one line each: a result file stays a few hundred lines."""
    return re.sub(
        r"\[[-\d\s.,eE+]*\]", lambda match: "[" + " ".join(match.group(0)[1:-1].split()) + "]", text
    )


def write(path: Path, result: dict) -> None:
    """Write ``result`` to ``path`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(
        _inline_numbers(json.dumps(result, indent=1, ensure_ascii=False)) + "\n", encoding="utf-8"
    )
    partial.replace(path)


def state(unit: Unit, result: dict | None, digest: str) -> tuple[str, str]:
    """``("done" | "pending" | "stale" | "waiting", why)`` of ``unit`` given its result file."""
    if unit.waiting:
        return "waiting", f"waits for {unit.waiting}"
    if result is None:
        return "pending", "no result file"
    recorded = result.get("data", {}).get("fingerprint")
    if recorded != digest:
        return "stale", f"made from other data (fingerprint {str(recorded)[:12]}, now {digest[:12]})"
    if result.get("overrides") != list(unit.overrides):
        return "stale", f"made with other overrides ({' '.join(result.get('overrides', []))})"
    return "done", ""


def commit(root: Path) -> dict:
    """The project's commit and whether tracked files outside the results differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()

    changed = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", ":!experiments/objectives/results"
    )
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(changed)}


def val_mrr(result: dict | None) -> float | None:
    """The best checkpoint's validation MRR@10 of a result, None when it has none (diverged)."""
    if result is None:
        return None
    return result.get("validation", {}).get(VAL_MRR)
