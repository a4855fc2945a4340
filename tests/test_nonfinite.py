"""Non-finite losses: skipped and counted; a run that keeps producing them stops and leaves no best or export."""

import csv
from types import SimpleNamespace

import pytest
import torch
from conftest import run_train_cli
from helpers import compose_config, tiny_run_overrides

from reranker.train import train
from reranker.training.losses import GroupCrossEntropy
from reranker.training.module import RerankerModule
from reranker.training.nonfinite import NonFiniteLossError


def overrides(model, triplet_files, output, *extra):
    return tiny_run_overrides(model, *triplet_files, output) + ["trainer.val_check_interval=2", *extra]


@pytest.mark.slow
def test_a_run_of_nan_losses_stops_with_advice_and_writes_no_checkpoint_or_export(
    nan_model, triplet_files, tmp_path
):
    output = tmp_path / "run"
    # Validation after step 2 falls inside the NaN streak: it must not save a best or last checkpoint.
    cfg = compose_config(overrides(nan_model, triplet_files, output, "++model.max_nonfinite_in_a_row=3"))
    with pytest.raises(NonFiniteLossError, match="NaN or infinite on 3 steps in a row") as error:
        train(cfg)
    assert "bf16-mixed" in str(error.value)
    assert not list(output.glob("checkpoints/*.ckpt"))
    assert not (output / "export").exists() and not (output / "metrics.json").exists()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.slow
def test_isolated_nan_losses_are_skipped_counted_and_training_goes_on(
    precision, tiny_bert, triplet_files, tmp_path, monkeypatch
):
    real_forward = GroupCrossEntropy.forward
    calls = {"count": 0}

    def nan_on_calls_2_and_3(self, scores, batch):
        loss = real_forward(self, scores, batch)
        if not scores.requires_grad:  # the health monitor's constant-scorer reference, not a training step
            return loss
        calls["count"] += 1
        return loss * float("nan") if calls["count"] in (2, 3) else loss

    monkeypatch.setattr(GroupCrossEntropy, "forward", nan_on_calls_2_and_3)
    output = tmp_path / "run"
    metrics = train(
        compose_config(overrides(tiny_bert, triplet_files, output, f"trainer.precision={precision}"))
    )

    assert (output / "export" / "config.json").exists()
    rows = list(csv.DictReader((output / "csv" / "metrics.csv").open()))
    # The returned MRR is the one validation measured when it chose the best checkpoint (its saved score).
    (best,) = (output / "checkpoints").glob("step*.ckpt")
    states = torch.load(best, map_location="cpu", weights_only=False)["callbacks"].values()
    (score,) = [float(state["best_model_score"]) for state in states if state.get("monitor") == "val/mrr@10"]
    assert metrics["val/mrr@10"] == pytest.approx(score, abs=1e-6)
    skipped = [float(row["train/skipped_nonfinite"]) for row in rows if row.get("train/skipped_nonfinite")]
    assert skipped[0] == 0.0 and skipped[-1] == 2.0
    checkpoint = torch.load(output / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # The two skipped batches made no optimiser update: AdamW counted two steps fewer than the loop.
    (adam_steps,) = {int(state["step"]) for state in checkpoint["optimizer_states"][0]["state"].values()}
    assert adam_steps == checkpoint["global_step"] - 2
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["state_dict"].values())


def test_under_fp16_the_grad_scaler_skips_the_update(tiny_bert):
    """fp16 needs a GPU; the GradScaler logic is the same on CPU: NaN gradients make it skip the step."""
    module = RerankerModule(tiny_bert)
    scaler = torch.amp.GradScaler("cpu")
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
    guard = module.nonfinite_guard
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    before = [parameter.detach().clone() for parameter in module.parameters()]
    scaler.scale(sum(parameter.sum() for parameter in module.parameters())).backward()
    guard.skip_optimizer_step = True
    guard.on_before_optimizer_step(trainer, module, optimizer)
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert scaler.get_scale() < scale and not guard.skip_optimizer_step


@pytest.mark.slow
def test_cli_stops_a_nan_run_with_a_one_line_error(nan_model, triplet_files, tmp_path):
    train_file, val_file = triplet_files
    result = run_train_cli(
        f"model.model_name_or_path={nan_model}",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        "data.num_workers=0",
        "validate_before_training=false",
        "++model.max_nonfinite_in_a_row=2",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode != 0
    assert "error: the training loss was NaN or infinite on 2 steps in a row" in result.stderr
    assert "bf16-mixed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "export").exists()
