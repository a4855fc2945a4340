"""`python -m reranker.export`: see :mod:`reranker.serving.export`."""

from reranker.serving.export import main

if __name__ == "__main__":
    main()
