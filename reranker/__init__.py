"""Train and evaluate cross-encoder rerankers with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
