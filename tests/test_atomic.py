"""reranker.core.atomic: a file or folder is replaced whole, or left as it was."""

import pytest

from reranker.core.atomic import atomic_write, replace_folder, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("old\n", encoding="utf-8")
    write_atomic(path, "서울\n")
    assert path.read_text(encoding="utf-8") == "서울\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["records.jsonl"]


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="cut short"), atomic_write(path) as handle:
        handle.write("half a ro")
        handle.flush()
        assert path.read_text(encoding="utf-8") == "old\n"  # the new text is not under the final name yet
        raise RuntimeError("cut short")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_a_given_temporary_is_used_and_renamed(tmp_path):
    (tmp_path / ".partial").mkdir()
    temporary = tmp_path / ".partial" / "last.ckpt"
    with atomic_write(tmp_path / "last.ckpt", "wb", temporary=temporary, sync=True) as handle:
        handle.write(b"weights")
        assert temporary.is_file()
    assert (tmp_path / "last.ckpt").read_bytes() == b"weights" and not temporary.exists()


def test_only_whole_writes_are_opened(tmp_path):
    with pytest.raises(ValueError, match="'w' or 'wb'"), atomic_write(tmp_path / "x", "a"):
        pass


def test_replace_folder_swaps_in_the_new_folder_whole(tmp_path):
    target = tmp_path / "export"
    for content in ("first", "second"):
        new = tmp_path / f".export-{content}"
        new.mkdir()
        (new / "model.safetensors").write_text(content)
        replace_folder(new, target)
        assert (target / "model.safetensors").read_text() == content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging, no previous left
