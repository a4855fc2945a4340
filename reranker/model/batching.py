"""Batches and chunks planned by token count, and a classifier's forward pass over right-padded pairs in
chunks: the mechanics every kind's scoring and :meth:`PairScorer.score` share, apart from the kinds."""

from __future__ import annotations

import torch


def score_features(
    model: torch.nn.Module, features: dict[str, torch.Tensor], max_tokens: int | None = None
) -> torch.Tensor:
    """Relevance logits ``[N]`` of a classifier for ``N`` tokenised pairs, in the order given.

    With ``max_tokens``, right-padded pairs are sorted by length and run in chunks of at most that many
    tokens, each cut to its own longest pair, so padding added for the whole batch is not computed; where
    the chunks are cut is chosen to compute the fewest token positions (see :func:`padding_chunks`). A pair's
    logit does not depend on the other pairs of its forward pass, so the logits (and their gradients, the
    result being indexed back into input order) are those of one pass, up to float rounding. Left-padded
    features (a first column that is not all real tokens) run in one pass.
    """
    mask = features.get("attention_mask")
    if max_tokens is None or mask is None or not bool(mask[:, 0].all()):
        return model(**features).logits.view(-1)
    lengths = mask.sum(dim=1).tolist()  # [N] real tokens of each pair
    chunks = padding_chunks(lengths, max_tokens)
    if len(chunks) == 1 and lengths[chunks[0][0]] == mask.shape[1]:
        return model(**features).logits.view(-1)
    features = dict(features)
    if "input_ids" in features:
        # The word embeddings are looked up once for the whole batch: the gradient of the embedding table
        # (dense, vocabulary x hidden: 384 MB for a 250k vocabulary) is then built once in the backward
        # pass, not once per chunk and summed.
        features["inputs_embeds"] = model.get_input_embeddings()(features.pop("input_ids"))  # [N, L, H]
    logits = []
    for chunk in chunks:
        rows = torch.tensor(chunk, device=mask.device)
        longest = lengths[chunk[0]]
        part = {name: value[rows, :longest] for name, value in features.items()}
        logits.append(model(**part).logits.view(-1))  # [len(chunk)]
    order = torch.tensor([row for chunk in chunks for row in chunk], device=mask.device)
    return torch.cat(logits)[torch.argsort(order)]  # [N] back in input order


# A forward and backward pass costs about as much per chunk, whatever its size, as this many tokens do
# (all-MiniLM-L6-v2 on 2 CPU cores: ~35 ms a pass, against ~0.55 ms a token).
CHUNK_COST_TOKENS = 64


def padding_chunks(
    lengths: list[int], max_tokens: int, chunk_cost: int = CHUNK_COST_TOKENS
) -> list[list[int]]:
    """Indices of sequences cut into chunks of at most ``max_tokens`` padded tokens (at least one sequence
    each), longest first, that compute the fewest token positions.

    Sequences are sorted by length; among all ways of cutting that order into runs, dynamic programming
    picks the one with the least ``sum(len(run) * longest(run) + chunk_cost)``: a chunk costs its padded
    tokens plus a fixed cost per pass, so a cut is made only where the padding it saves outweighs a pass.
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index], reverse=True)
    ordered = [lengths[index] for index in order]
    count = len(ordered)
    best = [0] + [None] * count  # best[j]: least cost of the first j sequences
    cut = [0] * (count + 1)  # cut[j]: where the last chunk of that best starts
    for end in range(1, count + 1):
        for start in range(end - 1, -1, -1):
            size = end - start
            if size > 1 and size * ordered[start] > max_tokens:
                break  # longer runs only hold more, and longer, sequences
            cost = best[start] + size * ordered[start] + chunk_cost
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    chunks = []
    end = count
    while end > 0:
        chunks.append(order[cut[end] : end])
        end = cut[end]
    return chunks[::-1]


def token_budget_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices of sequences cut into batches by length, longest first: each batch holds at most
    ``batch_size`` sequences and ``max_tokens`` tokens once padded to its longest (at least one sequence).

    Sorting first keeps the padding of each batch small; the longest batch comes first so the largest
    buffers are allocated once, up front, and reused by the smaller batches after it.
    """
    order = sorted(range(len(lengths)), key=lambda index: lengths[index], reverse=True)
    batches: list[list[int]] = []
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * longest > max_tokens):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)
    return batches
