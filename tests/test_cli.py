"""``reranker <command>``: one dispatcher, the same exit status for the same kind of failure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from reranker import cli

ROOT = Path(__file__).resolve().parents[1]


def reranker(*arguments: str, module: str = "reranker") -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", module, *arguments], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_console_script_is_the_dispatcher():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"reranker": "reranker.cli:main"}
    assert set(cli.COMMANDS) == {"train", "evaluate", "export", "prepare", "leaderboard"}
    for command in cli.COMMANDS:  # each is also python -m reranker.<command>
        assert (ROOT / "reranker" / f"{command}.py").is_file()


@pytest.mark.parametrize("arguments", [[], ["bogus"], ["export"], ["prepare", "squad", "--nope"]])
def test_a_command_line_that_does_not_parse_exits_2(arguments, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(arguments)
    assert info.value.code == 2
    assert "usage: reranker" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_input_exits_1_with_one_error_line_for_every_command(tmp_path):
    broken = tmp_path / "train.jsonl"
    broken.write_bytes(b'{"query": "q", "pos": ["p"]}\n{"query": "\xff", "pos": ["p"]}\n')
    missing = tmp_path / "missing"
    runs = {
        # Hydra overrides pass through the dispatcher: the training file is the one named here.
        "train": reranker("train", f"data.train_files={broken}", f"hydra.run.dir={tmp_path / 'run'}"),
        "evaluate": reranker("evaluate", str(broken), "--model", str(missing)),
        "export": reranker("export", f"{missing}.ckpt", "--out", str(tmp_path / "out")),
        "prepare": reranker(
            "prepare",
            "candidates",
            "--queries",
            str(broken),
            "--corpus",
            str(broken),
            "--out",
            str(tmp_path / "c.jsonl"),
        ),  # fmt: skip
        "leaderboard": reranker("leaderboard", str(missing)),
        "python -m reranker.export": reranker(f"{missing}.ckpt", "--out", "x", module="reranker.export"),
    }
    for name, result in runs.items():
        assert result.returncode == 1, (name, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in result.stderr, (name, result.stderr[-2000:])
    assert runs["train"].stderr.endswith(
        f"error: {broken}, line 2: not valid UTF-8 (byte 0xff at byte offset 40 of the file); save the file as UTF-8\n"
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.jsonl").exists()
