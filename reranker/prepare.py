"""`python -m reranker.prepare`: see :mod:`reranker.preparation.prepare`."""

from reranker.preparation.prepare import main

if __name__ == "__main__":
    main()
