"""The one reader of JSONL input: every command reads its JSONL files through :func:`read_jsonl`.

Bad input ends in one :class:`InputError` naming the file and line (and, for bytes that are not UTF-8, the
byte offset), never in a ``UnicodeDecodeError`` or ``JSONDecodeError`` traceback. Field checks stay with
the caller, which knows the format; :func:`where` spells the location the same way for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from reranker.core.errors import InputError


def where(path: str | Path, number: int) -> str:
    """``FILE, line N``: the location prefix of every data error."""
    return f"{path}, line {number}"


def read_jsonl(path: str | Path, allow_empty: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for every non-blank line of ``path``.

    Raises :class:`InputError` for a missing file, a line that is not UTF-8, not JSON or not a JSON object,
    and (unless ``allow_empty``) for a file without any object.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a JSONL file") from None
    seen = 0
    offset = 0  # of the current line's first byte, for the UTF-8 error
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                # Without its line ending, so that an error at the end of a line gets that line's column.
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{where(path, number)}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte offset "
                    f"{offset + err.start} of the file); save the file as UTF-8"
                ) from None
            offset += len(raw)
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark written by some editors
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(
                    f"{where(path, number)}: not valid JSON ({err.msg} at column {err.colno})"
                ) from None
            if not isinstance(record, dict):
                raise InputError(
                    f"{where(path, number)}: expected a JSON object, got {type(record).__name__}"
                )
            seen += 1
            yield number, record
    if seen == 0 and not allow_empty:
        raise InputError(f"{path}: file is empty (expected one JSON object per line)")
