"""The model layer every stage shares: how a (query, passage) pair becomes a score: loading, kinds, pair
encoders, batching, prompts, adapters, the scoring contract, checkpoints, the weights' identity, the ONNX
backend and the fusion with a first stage (:class:`~reranker.model.pair_scorer.PairScorer` puts them
together). Scoring many pairs (cached, sharded, over processes) is :mod:`reranker.scoring`, a layer above.
Nothing here imports scoring, training, evaluation, preparation or serving."""
