"""RerankerModule: a cross-encoder trained with a configured loss (``conf/loss/``) and validated by MRR and hit@k."""

from __future__ import annotations

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from reranker.core.errors import InputError
from reranker.model.adapters import LoraSettings, apply_lora
from reranker.model.attention import use_recomputed_attention
from reranker.model.dropout import apply_dropout, check_dropout
from reranker.model.kinds import ModelKind, Scorer
from reranker.model.loading import load_tokenizer, set_padding_token
from reranker.training.checkpoint_payload import add_model_files, add_rng_states, restore_rng_states
from reranker.training.losses import GroupCrossEntropy
from reranker.training.nonfinite import NonFiniteLossGuard
from reranker.training.optimizer import adamw_with_schedule
from reranker.training.validation import RankingValidation


def _plain(value):
    """Hydra hands nested config values over as DictConfig/ListConfig; checkpoints keep plain ones."""
    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
    )


class RerankerModule(L.LightningModule):
    """A Hugging Face model that scores each (query, passage) pair with one logit.

    Args:
        model_name_or_path: Hugging Face folder or hub name of the base model.
        loss: the training objective, ``loss(scores [B, G], batch)`` (``reranker.training.losses``);
            None: :class:`GroupCrossEntropy`. Not saved with the hyperparameters (a checkpoint loads
            for inference without it; a run's config records it).
        kind: how the model scores a pair (:class:`reranker.model.kinds.ModelKind` fields: ``form``
            classifier or yes_no, prompt templates, yes/no tokens); None: a classifier without prompt.
        lora: LoRA settings (:class:`reranker.model.adapters.LoraSettings`: ``r``, ``alpha``,
            ``dropout``, ``target_modules``); None trains every weight. With LoRA only the adapters (and
            a classifier's head) train and checkpoints hold only them.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm weights.
        warmup_ratio: share of the optimiser steps spent warming up linearly; the rest decays linearly to 0.
        freeze_embeddings: keep the word embeddings fixed (a large multilingual vocabulary is most
            of a small model's parameters; freezing it makes each optimiser step far cheaper).
        gradient_checkpointing: recompute encoder activations in the backward pass instead of keeping them:
            about a third more compute for far less activation memory (long inputs, large groups).
        dropout: probability of every dropout layer of the model while training; None keeps the base
            model's. The model's config (and so an export) keeps the base model's values. Dropout noise can
            drown the weak early signal of a model that does not know the language yet (the offline demo
            uses 0).
        attention_dropout: dropout on the attention probabilities while training, set after ``dropout``;
            None keeps what ``dropout`` (or the base model) gives. 0 lets PyTorch run its fused attention
            kernel: on CPU a kernel with dropout does not exist, and attention falls back to a path that
            materialises and masks every ``[heads, L, L]`` probability matrix (about 1.6x slower training
            of the demo model). The model's config keeps the base model's value.
        recompute_attention: with attention dropout, keep no ``[heads, L, L]`` matrix for the backward pass
            and compute the probabilities again there (:mod:`reranker.model.attention`): far less memory at
            long lengths for one more ``Q Kᵀ`` product a layer. Encoder cross-encoders only.
        forward_max_tokens: pairs of a batch are sorted by length and run through the model in chunks of
            at most this many tokens, each cut to its own longest pair, so the padding of the batch (to its
            longest pair) is not computed; the scores and the loss are those of one pass. None: one pass.
            Encoders only: a decoder's prompts are padded on the left and run in one pass.
        mrr_k: cut-off of the MRR metric.
        hit_ks: cut-offs of the hit-rate metrics.
        max_nonfinite_in_a_row: training stops with
            :class:`~reranker.training.nonfinite.NonFiniteLossError` after this many consecutive batches
            whose loss is NaN or infinite (on any rank). The optimiser update such a batch contributes to
            is skipped on every rank, and the batch is counted
            (:class:`~reranker.training.nonfinite.NonFiniteLossGuard`, which the module attaches itself).
        fusion_method: on retrieved candidate lists (a candidates file), validation also logs
            ``val/fused_*`` (the reranker mixed with the first stage by this method, ``zscore`` or
            ``minmax``, at the weight a that is best on that validation set) and ``val/fused_weight``;
            checkpoints and exports record that mix. None turns this off.

    On retrieved candidate lists validation also logs the first stage's own ``val/first_stage_*`` once
    and keeps each query's rank by the first stage, the reranker and the fused mix for the paired tests
    of the end-of-training report (:class:`~reranker.training.validation.RankingValidation`, ``validation``).
    """

    def __init__(
        self,
        model_name_or_path: str,
        loss: nn.Module | None = None,
        kind: dict | None = None,
        lora: dict | None = None,
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        freeze_embeddings: bool = False,
        gradient_checkpointing: bool = False,
        dropout: float | None = None,
        attention_dropout: float | None = None,
        recompute_attention: bool = False,
        forward_max_tokens: int | None = 2048,
        mrr_k: int = 10,
        hit_ks: tuple[int, ...] = (1, 3, 5),
        max_nonfinite_in_a_row: int = 10,
        fusion_method: str | None = "zscore",
    ) -> None:
        super().__init__()
        check_dropout(dropout, attention_dropout)
        # Plain ints, not a config ListConfig: checkpoints must load with torch.load(weights_only=True).
        hit_ks = tuple(int(k) for k in hit_ks)
        # Checked and stored in full (every field) before anything loads: checkpoints and exports state them.
        kind = ModelKind.from_config(_plain(kind)).to_config()
        lora = _plain(lora)
        lora_settings = LoraSettings.from_config(lora)
        self.save_hyperparameters(ignore=["loss"])
        self.kind = ModelKind.from_config(kind)
        tokenizer = set_padding_token(load_tokenizer(model_name_or_path))
        self.scorer = Scorer(self.kind, tokenizer, forward_max_tokens)
        self.model = self.kind.load_model(model_name_or_path, tokenizer)
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps each submodule's mode
        self.loss = loss if loss is not None else GroupCrossEntropy()
        if freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        if gradient_checkpointing:
            # Non-reentrant: gradients reach the adapters even though the frozen embeddings need none.
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        apply_dropout(self.model, dropout, attention_dropout)
        if recompute_attention:
            use_recomputed_attention(self.model, self.kind)
        if lora_settings is not None:
            self.model = apply_lora(self.model, lora_settings, self.kind)
            # Checkpoints hold the trained weights only; the frozen base comes from model_name_or_path.
            self.strict_loading = False
        self.validation = RankingValidation(mrr_k, hit_ks, fusion_method)
        self.nonfinite_guard = NonFiniteLossGuard(max_nonfinite_in_a_row)

    def configure_callbacks(self) -> list[L.Callback]:
        return [self.nonfinite_guard]

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scorer(self.model, features)  # [N]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        labels = batch["labels"]  # [B, G]
        # Pairs arrive query-major, so the flat scores fold into the labels' [B, G] shape.
        scores = self(batch["features"]).view(labels.shape)  # [B, G]
        self.last_train_scores = scores.detach()  # read by the TrainingHealth callback
        loss = self.loss(scores, batch)  # logged, and skipped when not finite, by the NonFiniteLossGuard
        # A mix of losses (LossMix) also reports each component: train/loss/<name>.
        for name, value in getattr(self.loss, "last_values", {}).items():
            self.log(f"train/loss/{name}", value, batch_size=labels.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.validation.update(self(batch["features"]).float(), batch)  # [N] scores

    def on_validation_epoch_end(self) -> None:
        values = self.validation.finish(self.trainer.strategy, full=not self.trainer.sanity_checking)
        for name, value in values.items():
            self.log(f"val/{name}", value, prog_bar=name.startswith("mrr"))

    def _trained_names(self, with_buffers: bool = False) -> set[str]:
        """State-dict names of the weights that train (and of the buffers). A frozen weight tied to
        another (an LM head tied to the embeddings) is listed once by ``named_parameters`` and is not here."""
        names = [name for name, parameter in self.named_parameters() if parameter.requires_grad]
        if with_buffers:
            names += [name for name, _ in self.named_buffers()]
        # Wrappers (FSDP, activation checkpointing) add prefixes that state dicts do not carry.
        return {
            name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
            for name in names
        }

    def check_trained_weights(self, state_dict: dict) -> None:
        """With LoRA a checkpoint holds the trained weights only: all of them must be there."""
        if self.hparams.get("lora") is None:
            return
        missing = sorted(self._trained_names() - set(state_dict))
        if missing:
            raise InputError(
                f"the checkpoint lacks {len(missing)} trained weights of the LoRA model, e.g. {missing[0]}"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.hparams.get("lora") is not None:
            trained = self._trained_names(with_buffers=True)
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}
        if self.validation.fusion is not None:
            checkpoint["fusion"] = self.validation.fusion
        encoder = getattr(getattr(self.trainer, "datamodule", None), "encoder", None)
        add_model_files(checkpoint, self.model, encoder)
        add_rng_states(checkpoint)  # every rank runs this hook; rank zero writes the file

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "state_dict" in checkpoint:  # FSDP loads the weights itself, before this hook
            self.check_trained_weights(checkpoint["state_dict"])
        self.validation.fusion = checkpoint.get("fusion")
        restore_rng_states(checkpoint, self.global_rank)

    def configure_optimizers(self) -> dict:
        trainer = self.trainer
        sharded = type(trainer.strategy).__name__.startswith("FSDP")
        sharded_or_mixed = sharded or "mixed" in str(trainer.precision)
        # fused: one kernel per parameter, no temporaries the size of the model (on 2 CPU cores a step of
        # multilingual-e5-small updates in ~0.2 s instead of ~0.9 s). FSDP's sharded parameters, and mixed
        # precision (whose gradient clipping must unscale before the step), keep the multi-tensor one.
        return adamw_with_schedule(
            self.model,
            trainer,
            self.hparams.lr,
            self.hparams.weight_decay,
            self.hparams.warmup_ratio,
            fused=None if sharded_or_mixed else True,
        )
