"""`python -m reranker.leaderboard`: see :mod:`reranker.evaluation.leaderboard`."""

from reranker.evaluation.leaderboard import main

if __name__ == "__main__":
    main()
