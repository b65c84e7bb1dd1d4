"""Finish a model directory: everything is written into a staging directory next to the output, which
is renamed into place only when complete, so a killed job never leaves something that looks finished.
Used by the tiny-model builder and by training."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from mlit.files import atomic_write_text, write_json
from mlit.safe_paths import checked, publish_dir, remove_tree


def staging_dir(out_dir: Path) -> Path:
    """Where a model is written until it is complete (then renamed to ``out_dir``)."""
    return out_dir.with_name(out_dir.name + ".tmp")


def publish_model(tmp: Path, out_dir: Path, *, tokenizer=None, save_weights: Callable[[Path], None] | None = None,
                  metadata: dict[str, str | dict] | None = None, copy: Iterable[Path] = (),
                  drop: Iterable[str] = ()) -> Path:
    """Complete the model in ``tmp`` and rename it to ``out_dir``.

    ``save_weights(tmp)`` writes the weights (None: already written, e.g. collectively by every rank of
    a ZeRO-3 run); then the tokenizer, the files in ``copy``, the ``metadata`` files (name -> text, or
    a dict written as JSON); ``drop`` names staging-only entries (checkpoints) removed before the rename."""
    tmp, out_dir = checked(tmp), checked(out_dir)
    if save_weights is not None:
        save_weights(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    for source in copy:
        shutil.copy(source, tmp / Path(source).name)
    for name, content in (metadata or {}).items():
        if isinstance(content, dict):
            write_json(tmp / name, content)
        else:
            atomic_write_text(tmp / name, content)
    for name in drop:
        remove_tree(tmp / name)
    return publish_dir(tmp, out_dir)
