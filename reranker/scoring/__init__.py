"""How many pairs get scored: the layer between :mod:`reranker.model` (how a pair becomes a score) and the
stages that score many pairs (evaluation, preparation, the benchmarks).

- :mod:`~reranker.scoring.pairs`: the front end, :class:`PairScoring` and :func:`score_pairs`: cached in one
  process (the cache keyed by the weights' identity), or sharded over processes;
- :mod:`~reranker.scoring.engine`: Lightning's predict loop under DDP, one shard a step;
- :mod:`~reranker.scoring.shards`: the shard folder (configuration, atomic shards, resume, merge);
- :mod:`~reranker.scoring.options`: the commands' scoring options and :class:`ParallelOptions`.

Imports nothing at package level, so parsing a command's options stays free of torch and Lightning.
"""
