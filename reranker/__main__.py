"""``python -m reranker <command>``: the same as the ``reranker`` console script."""

from reranker.cli import main

main()
