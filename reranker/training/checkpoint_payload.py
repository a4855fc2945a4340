"""What a training checkpoint carries beside Lightning's own state: the model config and tokenizer files,
the scoring lengths, and each rank's random-number generator states.

The config, tokenizer files and lengths make a checkpoint export and serve without the base model's
folder, scored as validation scored it. The generator states let a resumed run continue dropout's random
streams exactly.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from reranker.model.checkpoint import PRETRAINED_KEY, pack_pretrained
from reranker.model.contract import CONTRACT_KEY, model_limit

RNG_KEY = "rng_states"


def add_model_files(checkpoint: dict, model: nn.Module, encoder) -> None:
    """Add the model's config and tokenizer files and, with an ``encoder`` (the datamodule's pair
    encoder, None when the module runs without one), the lengths validation scored with."""
    checkpoint[PRETRAINED_KEY] = pack_pretrained(model, getattr(encoder, "tokenizer", None))
    if encoder is not None:
        # Every client of the checkpoint scores with these lengths.
        checkpoint[CONTRACT_KEY] = {
            "max_length": encoder.max_length,
            "query_max_length": encoder.query_max_length,
            "truncation_side": encoder.tokenizer.truncation_side,
            "model_max_length": model_limit(encoder.tokenizer),
        }


def add_rng_states(checkpoint: dict) -> None:
    """Add the generator states of every rank (a collective under DDP: every rank calls it).

    Dropout draws from the global generators, and ranks draw as many numbers as their batches hold
    tokens, so each rank's states are kept; rank zero writes the file.
    """
    states = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    per_rank = [states]
    if _distributed():
        per_rank = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(per_rank, states)
    checkpoint[RNG_KEY] = per_rank


def restore_rng_states(checkpoint: dict, rank: int) -> None:
    """Set the generators to ``rank``'s saved states; on another number of ranks than saved, rank zero's."""
    per_rank = checkpoint.get(RNG_KEY)
    if isinstance(per_rank, dict):  # written before states were kept per rank
        per_rank = [per_rank]
    if not per_rank:
        return
    world_size = torch.distributed.get_world_size() if _distributed() else 1
    states = per_rank[rank] if len(per_rank) == world_size else per_rank[0]
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()
