"""Progress of long work: a bar on a terminal, plain lines where output is not one (a log file, a Slurm job).

A bar that redraws itself leaves nothing readable in a log, so where stderr is not a terminal the same
progress is written as a line at most every ``every_seconds`` (30 by default), with the rate and the time
left, and one closing line with the total time::

    encode passages: 120000/8841823 texts (1.4%)  812.3 texts/s  elapsed 0:02:27  eta 2:58:56
    encode passages: 8841823 texts in 3:01:22 (812.5 texts/s)

Work that ends before the first line is due prints nothing, so short runs and tests stay quiet.
``RERANKER_PROGRESS_SECONDS`` in the environment sets another interval (``5`` for a line every 5 s).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from reranker.core.errors import InputError

EVERY_SECONDS = 30.0


def duration(seconds: float) -> str:
    """``H:MM:SS`` of a number of seconds."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts done units of a job of ``total`` units; ``update(n)`` after each batch, ``close()`` at the end.

    Args:
        total: how many units the whole job has (its size: texts, queries).
        label: what is being done, the start of every line (``encode passages``).
        unit: the unit's name in the lines (``texts``).
        every_seconds: the least time between two plain lines (None: :data:`EVERY_SECONDS`).
        stream: where to write (stderr by default); a terminal gets a tqdm bar.
    """

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "items",
        every_seconds: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.every_seconds = every_seconds if every_seconds is not None else _interval()
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.lines = 0
        self.bar = None
        if total > 0 and _is_terminal(self.stream):  # nothing to do (all cached): no empty bar
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, file=self.stream, mininterval=1.0)

    def update(self, count: int = 1) -> None:
        """Count ``count`` more units done; a plain line when ``every_seconds`` have passed since the last."""
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every_seconds:
            self.last_line = now
            self.lines += 1
            print(self._line(now), file=self.stream, flush=True)

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / max(elapsed, 1e-9)
        share = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        parts = [f"{self.label}: {self.done}/{self.total} {self.unit}{share}", f"{rate:.1f} {self.unit}/s"]
        parts.append(f"elapsed {duration(elapsed)}")
        if 0 < self.done < self.total:
            parts.append(f"eta {duration((self.total - self.done) / rate)}")
        return "  ".join(parts)

    def close(self, finished: bool = True) -> None:
        """End the bar, or write the closing line where plain lines were written (not for a job that failed)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and finished:
            elapsed = time.monotonic() - self.started
            rate = self.done / max(elapsed, 1e-9)
            print(
                f"{self.label}: {self.done} {self.unit} in {duration(elapsed)} ({rate:.1f} {self.unit}/s)",
                file=self.stream,
                flush=True,
            )
            self.lines = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(finished=exc_type is None)


def _interval() -> float:
    """Seconds between plain lines: ``RERANKER_PROGRESS_SECONDS`` where set, else :data:`EVERY_SECONDS`."""
    value = os.environ.get("RERANKER_PROGRESS_SECONDS", "").strip()
    if not value:
        return EVERY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise InputError(f"RERANKER_PROGRESS_SECONDS must be a number of seconds >= 0, got {value!r}")
    return seconds


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
