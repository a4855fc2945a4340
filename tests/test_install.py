"""The package as users install it: a wheel (not editable) in a fresh virtual environment, run from an
empty folder with the checkout off ``sys.path``, so configs and sample data must come from the wheel.

The environment reuses this one's installed dependencies through a path line in a ``.pth`` file (the
lines of that folder's own ``.pth`` files, such as the checkout's editable install, are not run), and the
wheel goes in with ``--no-deps --no-index``: nothing is downloaded.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

# A fresh environment with the wheel installed: minutes.
pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from, copied so that a stale build/ folder of the checkout cannot leak into it.
SOURCES = ["pyproject.toml", "setup.py", "README.md", "reranker", "conf"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a fresh environment holding the wheel built from the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    wheels = root / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source], check=True
    )
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (wheel,) = wheels.glob("reranker-*.whl")
    # Forced: pip sees the checkout's editable install through the path line and would keep it.
    subprocess.run(
        [*pip, "--python", python, "install", "--force-reinstall", "--no-deps", "--no-index", wheel],
        check=True,
    )
    return env_dir / "bin"


def run_installed(bin_dir: Path, *command: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
    )
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_configs_and_sample_data_come_from_the_installed_package(installed, tmp_path):
    probe = (
        "import json, reranker; from reranker.training.config import conf_dir, sample_data_path; "
        "print(json.dumps([reranker.__file__, str(conf_dir()), sample_data_path('ko_train.jsonl')]))"
    )
    result = run_installed(installed, str(installed / "python"), "-c", probe, cwd=tmp_path)
    package, conf, sample = (Path(path) for path in json.loads(result.stdout))
    environment = installed.parent
    for path in (package, conf, sample):
        assert environment in path.parents and REPO not in path.parents, path
    assert (conf / "experiment" / "demo_ko.yaml").is_file() and sample.is_file()


def test_installed_command_composes_the_demo_and_a_users_own_experiment(installed, tmp_path):
    result = run_installed(installed, "reranker", "train", "experiment=demo_ko", "--cfg", "job", cwd=tmp_path)
    assert "task_name: demo_ko" in result.stdout
    # A user's config folder adds experiments (and models, losses, ...) through Hydra's search path.
    user_conf = tmp_path / "my_conf"
    (user_conf / "experiment").mkdir(parents=True)
    (user_conf / "experiment" / "my_demo.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: sample_ko\n\ntask_name: my_demo\nmodel:\n  lr: 3e-5\n"
    )
    for search in (["--config-dir", str(user_conf)], [f"hydra.searchpath=[file://{user_conf}]"]):
        result = run_installed(
            installed, "reranker", "train", *search, "experiment=my_demo", "--cfg", "job", cwd=tmp_path
        )
        assert "task_name: my_demo" in result.stdout and "lr: 3.0e-05" in result.stdout, result.stdout


def test_installed_command_trains_the_demo_from_an_empty_folder(installed, tmp_path):
    run_installed(
        installed,
        "reranker",
        "train",
        "experiment=demo_ko",
        "trainer.max_steps=2",
        "+trainer.limit_val_batches=2",
        "validate_before_training=false",
        "callbacks.progress_bar=null",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "export" / "config.json").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val/mrr@10" in metrics
    # Nothing but the run folder is written where the command runs.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
