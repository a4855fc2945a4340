"""Paths and settings every benchmark script shares.

The peers run from the project's virtual environments (``make test`` builds both): ``.venv`` for ours and
sentence-transformers, ``.venv-compat`` (transformers 4) for FlagEmbedding and sentence-transformers' ONNX
backend. ``SHARED`` (default
``../shared`` beside the project) holds the data; ``ME5`` (default ``benchmarks/work/me5-small``, built by
``setup.py`` with ``../shared/tools/me5-small/convert.sh`` when missing) is multilingual-e5-small.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared"))
ME5_SMALL = Path(os.environ.get("ME5", WORK / "me5-small"))
PYTHONS = {
    "ours": str(ROOT / ".venv" / "bin" / "python"),
    "sentence-transformers": str(ROOT / ".venv" / "bin" / "python"),
    "FlagEmbedding": str(ROOT / ".venv-compat" / "bin" / "python"),
}
# Scoring adds the ONNX systems; sentence-transformers' ONNX backend (Optimum ONNX) needs transformers 4.
SCORERS = {
    **PYTHONS,
    "ours-onnx": PYTHONS["ours"],
    "ours-onnx-int8": PYTHONS["ours"],
    "sentence-transformers-onnx-int8": PYTHONS["FlagEmbedding"],
}


def worker_env() -> dict[str, str]:
    """The environment of every measured process: offline, this checkout importable, no tokenizer threads."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "TOKENIZERS_PARALLELISM": "false",
    }


def machine() -> dict:
    """What ran it: the CPU model, cores, threads PyTorch uses by default, the platform."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def commit_of(code: Path) -> str:
    """The commit of a checkout, with "+changes" where tracked files other than benchmark results (what the
    benchmarks write, not what they run) differ from it."""
    head = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    code_only = ["--", ".", ":(exclude)benchmarks/results"]
    dirty = subprocess.run(["git", "-C", str(code), "diff", "--quiet", "HEAD", *code_only]).returncode != 0
    return head + ("+changes" if dirty else "")


def write_result(path: Path, record: dict) -> None:
    """Write a benchmark's result file: ``record`` with what ran it (machine, commit, day)."""
    record = {
        **record,
        "machine": machine(),
        "commit": commit_of(ROOT),
        "recorded": time.strftime("%Y-%m-%d"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
