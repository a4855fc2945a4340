"""The package list: the ``reranker*`` packages, and ``conf/`` installed as ``reranker.conf``.

Everything else is in pyproject.toml; its ``[tool.setuptools]`` cannot name a package found by a search
and one mapped to another folder together.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["reranker*"]), "reranker.conf"])
