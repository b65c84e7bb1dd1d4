"""Matplotlib without a display, and figures saved as PNG and SVG side by side. Each plotted series
has a group id (matplotlib's ``gid``: ``line|...``, ``bar|...``) that names what it shows, so the SVG
can be read back (the tests do)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_stem: Path, note: str | None = None) -> list[Path]:
    """Write ``<out_stem>.png`` and ``<out_stem>.svg``, close the figure, return both paths. ``note`` (the
    judge and what its scores measure, ``mlit.results.judge_spread.short_caption``) is the figure's
    top line."""
    if note:
        fig.suptitle(note, fontsize=7)
    fig.tight_layout()
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return paths
