"""Slurm: scripts parse; a run warned by SIGUSR1 saves, requeues (a fake scontrol records it) and resumes."""

import os
import subprocess
from pathlib import Path

import pytest
import torch
from test_resume import INTERRUPT, final_weights, run

from reranker.train import resolve_ckpt_path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    (REPO / "slurm").glob("train_*.sbatch")
)  # training scripts; teacher_*: test_parallel_scoring


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_sbatch_scripts_parse_and_pin_one_folder_per_job(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --signal=SIGUSR1@" in text and "#SBATCH --requeue" in text
    assert 'hydra.run.dir="${RUN_DIR}"' in text and "SLURM_JOB_ID" in text and "ckpt_path=last" in text


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A single-task Slurm job (Lightning detects SLURMEnvironment) with a fake scontrol on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.log"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for name, value in {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "reranker",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODELIST": "localhost",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return calls


@pytest.mark.slow
def test_preempted_job_saves_requeues_and_resumes_to_the_same_end(
    fake_slurm, triplet_files, tiny_bert, tmp_path
):
    validate = "trainer.val_check_interval=2"
    expected_metrics = run(tiny_bert, triplet_files, tmp_path / "uninterrupted", validate)
    expected_weights = final_weights(tmp_path / "uninterrupted")

    job_dir = tmp_path / "job-4242"
    # SIGUSR1 after step 5, between validations (last.ckpt is from step 4): Lightning saves hpc_ckpt_1.ckpt.
    with pytest.raises(Exception, match="interrupted after step 5"):
        run(tiny_bert, triplet_files, job_dir, validate, *INTERRUPT, "+callbacks.kill.step=5",
            "+callbacks.kill.send_sigusr1=true", "ckpt_path=last")  # fmt: skip
    assert fake_slurm.read_text().split() == ["requeue", "4242"]
    hpc = job_dir / "hpc_ckpt_1.ckpt"
    assert torch.load(hpc, map_location="cpu", weights_only=False)["global_step"] == 5

    # The requeued job runs the same command in the same folder; "last" is the requeue checkpoint.
    assert resolve_ckpt_path("last", job_dir) == str(hpc)
    metrics = run(tiny_bert, triplet_files, job_dir, validate, "ckpt_path=last")
    assert metrics == expected_metrics
    weights = final_weights(job_dir)
    assert all(torch.equal(weights[name], expected_weights[name]) for name in expected_weights)
