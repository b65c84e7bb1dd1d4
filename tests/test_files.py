import os
import stat

import pytest

import mlit.files
from mlit.files import atomic_write_text, write_json, write_jsonl


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one is restored after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)], ids=["022", "027", "002"])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mask, mode):
    umask(mask)
    for name, write in (("a.txt", lambda p: atomic_write_text(p, "x\n")), ("b.jsonl", lambda p: write_jsonl(p, [{}])),
                        ("c.json", lambda p: write_json(p, {}))):
        write(tmp_path / name)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
        with open(tmp_path / f"plain-{name}", "w") as handle:  # what a plain open() gives, for comparison
            handle.write("x")
        assert stat.S_IMODE((tmp_path / f"plain-{name}").stat().st_mode) == mode


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    """fsync fails after the new text was written and flushed: a write straight into the target
    would have replaced the old content already."""
    target = tmp_path / "out.jsonl"
    target.write_text("old content\n")

    def failing_fsync(fd):
        raise OSError(5, "injected I/O error")

    monkeypatch.setattr(mlit.files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        atomic_write_text(target, "new content\n" * 1000)
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_unencodable_text_leaves_the_old_file_and_no_temp_file(tmp_path):
    """The encoder fails partway through the text (a lone surrogate): opening the target for
    writing would already have emptied it."""
    target = tmp_path / "out.json"
    target.write_text("old content\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "new content\n" * 10000 + "\ud800")
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_the_target_keeps_its_old_content_until_the_rename(tmp_path, monkeypatch):
    """At fsync time the new text is written but not yet in place: the target still reads old."""
    target = tmp_path / "out.txt"
    target.write_text("old content\n")
    seen = []
    real_fsync = os.fsync

    def spying_fsync(fd):
        seen.append(target.read_text())
        real_fsync(fd)

    monkeypatch.setattr(mlit.files.os, "fsync", spying_fsync)
    atomic_write_text(target, "new content\n")
    assert seen == ["old content\n"]
    assert target.read_text() == "new content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
