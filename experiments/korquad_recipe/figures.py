"""The generated tables of this experiment's README.md (``scripts/figures.py``), from committed results."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from end_to_end import summary  # noqa: E402


def end_to_end() -> str:
    """The recorded runs restated end to end (``end_to_end/results.json``)."""
    return summary(HERE / "end_to_end" / "results.json")
