"""trainer=fsdp on 2 CPU processes (gloo) with a LoRA decoder reranker: validation metrics equal those of
one process on the same checkpoint, checkpoints hold the adapters, and a killed run resumes exactly.

Lightning refuses FSDP on CPU; ``tests/strategies.py`` lifts exactly those refusals (named there), so the
strategy, layer wrapping and full state-dict checkpoints are the ones ``conf/trainer/fsdp.yaml`` builds.
bf16 and Lightning's own CUDA paths only run on GPUs.
"""

import json
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from conftest import make_records, run_train_cli, write_jsonl
from helpers import compose_config, tiny_run_overrides
from omegaconf import OmegaConf

from reranker.core.errors import InputError
from reranker.training.fsdp import check_precision
from reranker.training.module import RerankerModule

METRICS = ("mrr@10", "hit@1", "hit@3", "hit@5")
ON_CPU = [
    "trainer=fsdp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "trainer.strategy._target_=tests.strategies.CPUFSDPStrategy",
    "model.gradient_checkpointing=false",  # the strategy checkpoints the layers itself
]


def overrides(model_dir: str, folder: Path) -> list[str]:
    records = make_records()
    train_file = write_jsonl(folder / "train.jsonl", records[::2] + records[1::4])
    val_file = write_jsonl(folder / "val.jsonl", records[3::4])
    return [
        *[
            o
            for o in tiny_run_overrides(model_dir, str(train_file), str(val_file), folder)
            if "output_dir" not in o
        ],
        "model=qwen3_reranker_0_6b",
        f"model.model_name_or_path={model_dir}",
        "model.lr=1e-2",
        "data.max_length=300",
        "trainer.max_epochs=1",
        "trainer.val_check_interval=2",
    ]


def run_fsdp(model_dir: str, folder: Path, output: Path, *extra: str):
    return run_train_cli(*overrides(model_dir, folder), *ON_CPU, f"hydra.run.dir={output}", *extra)


@pytest.fixture(scope="module")
def fsdp_run(tiny_qwen3, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fsdp")
    output = folder / "run"
    result = run_fsdp(tiny_qwen3, folder, output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stdout + result.stderr
    return folder, output


def validate_in_one_process(cfg, checkpoint: Path | None = None) -> dict[str, float]:
    datamodule = hydra.utils.instantiate(cfg.data)
    module = (
        RerankerModule.load_from_checkpoint(checkpoint, map_location="cpu")
        if checkpoint
        else hydra.utils.instantiate(cfg.model)
    )
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return {k: float(v) for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()}


@pytest.mark.slow
def test_fsdp_metrics_equal_one_process_and_checkpoints_hold_the_adapters(fsdp_run, tiny_qwen3):
    folder, output = fsdp_run
    fsdp = json.loads((output / "metrics.json").read_text())
    cfg = compose_config(overrides(tiny_qwen3, folder) + [f"paths.output_dir={folder / 'single'}"])
    zero_shot = validate_in_one_process(cfg)
    assert {k: fsdp[f"zero_shot/{k}"] for k in METRICS} == {k: zero_shot[f"val/{k}"] for k in METRICS}

    (best,) = (output / "checkpoints").glob("step*.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    assert len(state) == 2 * 7 * 2 and all("lora_A" in name or "lora_B" in name for name in state)
    trained = validate_in_one_process(cfg, best)
    assert {k: fsdp[f"val/{k}"] for k in METRICS} == {k: trained[f"val/{k}"] for k in METRICS}
    assert any(fsdp[f"val/{k}"] != fsdp[f"zero_shot/{k}"] for k in METRICS)  # training changed the ranking
    assert (output / "export" / "model.safetensors").is_file()


@pytest.mark.slow
def test_fsdp_run_killed_and_resumed_ends_like_an_uninterrupted_one(fsdp_run, tiny_qwen3):
    folder, expected_output = fsdp_run
    resumed = folder / "resumed"
    kill = ["+callbacks.kill._target_=tests.faults.InterruptAt", "+callbacks.kill.step=3"]
    result = run_fsdp(tiny_qwen3, folder, resumed, *kill)
    assert result.returncode != 0 and "interrupted after step 3" in result.stderr
    result = run_fsdp(tiny_qwen3, folder, resumed, "ckpt_path=last")
    assert result.returncode == 0, result.stderr[-3000:]

    expected = json.loads((expected_output / "metrics.json").read_text())
    assert json.loads((resumed / "metrics.json").read_text()) == expected
    weights = [
        torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        for run in (expected_output, resumed)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


@pytest.mark.slow
def test_qwen3_reranker_ko_is_lora_bf16_fsdp_and_stops_on_a_machine_without_bf16(tmp_path):
    cfg = compose_config(
        ["experiment=qwen3_reranker_ko", f"paths.output_dir={tmp_path}", "data.train_files=x"]
    )
    assert cfg.model.model_name_or_path == "Qwen/Qwen3-Reranker-0.6B" and cfg.model.kind.form == "yes_no"
    assert cfg.model.lora.r == 16 and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.strategy._target_ == "lightning.pytorch.strategies.FSDPStrategy"
    result = run_train_cli(
        "experiment=qwen3_reranker_ko", "data.train_files=/no/such.jsonl", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: trainer.precision bf16-mixed on accelerator gpu: no CUDA GPU is visible here"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "trainer, cuda, bf16, message",
    [
        (
            {"accelerator": "cpu", "precision": "bf16-mixed", "strategy": {"_target_": "x.FSDPStrategy"}},
            False,
            False,
            "trainer.precision bf16-mixed with FSDP needs CUDA GPUs",
        ),
        (
            {"accelerator": "gpu", "precision": "bf16-mixed", "strategy": {"_target_": "x.FSDPStrategy"}},
            True,
            False,
            "cannot compute in bfloat16 \\(Ampere or newer can\\)",
        ),
        (
            {"accelerator": "gpu", "precision": "16-mixed", "strategy": "ddp"},
            False,
            False,
            "no CUDA GPU is visible",
        ),
    ],
)
def test_a_precision_the_devices_cannot_do_is_refused(trainer, cuda, bf16, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    with pytest.raises(InputError, match=message):
        check_precision(OmegaConf.create(trainer))


def test_precisions_the_devices_can_do_pass(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    check_precision(OmegaConf.create({"accelerator": "gpu", "precision": "bf16-mixed", "strategy": "fsdp"}))
    check_precision(OmegaConf.create({"accelerator": "cpu", "precision": "32-true", "strategy": "fsdp"}))
