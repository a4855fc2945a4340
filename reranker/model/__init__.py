"""The model layer every stage shares: loading, kinds, pair encoders, scoring, prompts, adapters,
checkpoints and the fusion with a first stage. Nothing here imports training, evaluation, preparation
or serving."""
