"""Which judge requests a rerun retries: the bookkeeping of a cell's ``api_error`` judgments.

A judge job that ends with requests that failed after their retries (``api_error`` rows) still writes
its judgments (the tables count the failures), so Snakemake sees a finished job. To retry them on the
next run, and only then, the job leaves ``<judgments dir>/api_errors.json``: ``{"round": n,
"api_errors": k}``. The judge rule's params hold the file's ``round``; a job that ends with failures
writes ``round + 1`` (a params change: the next run reruns the job, and the replies already received
come from the judge cache, so only the failed requests are sent again); a job that ends without
failures keeps the round it ran with (the same params: nothing reruns after it).
"""

from __future__ import annotations

import json
from pathlib import Path

from mlit.files import write_json

FILE_NAME = "api_errors.json"


def read(path: str | Path) -> dict:
    """``{"round": n, "api_errors": k}`` of a cell; round 0 and no failures without the file (or with a
    file this module did not write)."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"round": 0, "api_errors": 0}
    if not isinstance(state, dict):
        return {"round": 0, "api_errors": 0}
    numbers = {key: state.get(key) for key in ("round", "api_errors")}
    return {key: value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
            for key, value in numbers.items()}


def record(path: str | Path, ran_with: int, api_errors: int) -> None:
    """After a judge job that ran with round ``ran_with``: a new round if requests failed (retried by the
    next run), else the same round (no rerun); without failures and without a file, nothing is written."""
    path = Path(path)
    if api_errors:
        write_json(path, {"round": ran_with + 1, "api_errors": api_errors})
    elif path.exists():
        write_json(path, {"round": ran_with, "api_errors": 0})


def pending(paths: dict[str, str | Path]) -> dict[str, int]:
    """``{cell: k}`` for each cell whose last judge job left ``k`` > 0 failed requests to retry."""
    return {cell: count for cell, path in paths.items() if (count := read(path)["api_errors"])}
