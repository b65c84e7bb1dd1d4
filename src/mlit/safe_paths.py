"""The one place that deletes or replaces directories. Every destructive step (building, preparing,
training, fetching) goes through it, and it refuses any path that does not really name a child of
its own parent directory: no ``.``/``..`` component, no symlink that leads elsewhere, never the working
directory, one of its ancestors, the home directory or ``/`` (a base model named ``..`` once made a
builder remove all of ``results/``)."""

from __future__ import annotations

import shutil
from pathlib import Path


class UnsafePathError(ValueError):
    """A path a step was about to delete or replace lies outside where it should."""


def checked(path: str | Path) -> Path:
    """``path`` if deleting it can only delete what its name says; else UnsafePathError."""
    path = Path(path)
    if any(part in (".", "..") for part in path.parts) or path.name in ("", ".", ".."):
        raise UnsafePathError(f"{path}: refusing to delete or replace a path with '.' or '..' in it")
    resolved = path.resolve()
    if resolved.parent != path.parent.resolve() or resolved.name != path.name:
        raise UnsafePathError(f"{path}: resolves to {resolved}, outside {path.parent.resolve()}; refusing to "
                              "delete or replace it")
    protected = {Path("/"), Path.home().resolve(), *Path.cwd().resolve().parents, Path.cwd().resolve()}
    if resolved in protected:
        raise UnsafePathError(f"{path}: resolves to {resolved}, the working directory, one of its parents or "
                              "the home directory; refusing to delete or replace it")
    return path


def remove_tree(path: str | Path) -> None:
    """Remove a directory (or file) if it exists, after the checks above."""
    path = checked(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def publish_dir(tmp: str | Path, out: str | Path) -> Path:
    """Replace ``out`` with the finished ``tmp`` (written next to it): outputs appear complete or not
    at all."""
    tmp, out = checked(tmp), checked(out)
    remove_tree(out)
    tmp.rename(out)
    return out


def fresh_dir(path: str | Path) -> Path:
    """An empty directory at ``path`` (whatever was there is removed)."""
    remove_tree(path)
    Path(path).mkdir(parents=True)
    return Path(path)
