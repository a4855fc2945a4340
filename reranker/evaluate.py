"""`python -m reranker.evaluate`: see :mod:`reranker.evaluation.evaluate`."""

from reranker.evaluation.evaluate import main

if __name__ == "__main__":
    main()
