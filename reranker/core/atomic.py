"""Files and folders written whole or not at all.

A writer fills a temporary file (or folder) beside the target and renames it into place, so a process
killed mid-write never leaves a half-written file under the final name: readers see the old file or the
new one. The temporary sits in the target's folder because a rename is atomic only within one file system.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temporary_name(path: Path) -> Path:
    """``.<name>.tmp-<pid>`` beside ``path``: hidden, and distinct for each process writing the same file."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_write(
    path: str | Path,
    mode: str = "w",
    *,
    newline: str | None = None,
    temporary: str | Path | None = None,
    sync: bool = False,
) -> Iterator[IO]:
    """Open a temporary file for writing and, when the block ends without an error, rename it to ``path``.

    Args:
        path: the file to write; its folder must exist.
        mode: ``"w"`` (text, UTF-8) or ``"wb"`` (bytes).
        newline: as :func:`open`'s (``""`` for the csv module).
        temporary: where to write first (default :func:`temporary_name`); on the same file system as ``path``.
        sync: flush the file to disk before the rename (checkpoints: a crash of the machine then leaves
            the old file or the whole new one, not an empty one).

    On an error the temporary file is removed and the error raised; ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    temporary = Path(temporary) if temporary is not None else temporary_name(path)
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(temporary, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def previous_name(folder: Path) -> Path:
    """``.<name>-previous`` beside ``folder``: where :func:`replace_folder` moves the old folder aside."""
    return folder.with_name(f".{folder.name}-previous")


def replace_folder(new: Path, target: Path) -> None:
    """Rename the finished folder ``new`` to ``target``, replacing the folder there.

    The old folder is moved aside whole (to :func:`previous_name`) before the new one takes its name and
    is removed after, so a kill at any point leaves either folder complete under ``target``, or none with
    the old one beside it; never a half-deleted one. ``new`` must be on the same file system as ``target``.
    """
    previous = previous_name(target)
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    new.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
