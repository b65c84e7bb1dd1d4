"""Import FastChat / MT-Bench-X judgment files (``question_id, model, judge, user_prompt, judgment,
score, turn``) into a score table: the means of FastChat's ``show_result`` (over ratings that are not
-1), with the failed judgments counted in ``failed`` instead of dropped silently. A failure is read
from the row's kind, never from its text: mlit's own rows carry ``failure`` (``mlit.records.FAILURE_KINDS``,
score null); FastChat's rows have no such field and mark a reply without a parsable rating by score -1
(read as "unparsable")."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mlit.files import atomic_write_text, read_jsonl
from mlit.records import FAILURE_KINDS


def load_fastchat_judgments(path: str | Path) -> pl.DataFrame:
    """Rows ``model, turn, score, failure``: score null for a failed judgment, ``failure`` its kind."""
    rows = []
    for number, row in enumerate(read_jsonl(path), start=1):
        missing = [field for field in ("model", "score", "turn") if field not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}; expected FastChat's judgment format")
        if "failure" in row:  # mlit's judgment rows: the recorded kind
            failure = row["failure"]
            if failure is not None and failure not in FAILURE_KINDS:
                raise ValueError(f"{path}:{number}: failure {failure!r} is not null or one of {FAILURE_KINDS}")
            if (row["score"] is None) != (failure is not None):
                raise ValueError(f"{path}:{number}: score {row['score']!r} with failure {failure!r}; "
                                 "a failed judgment has score null, a scored one failure null")
        else:  # FastChat's: score -1 is its marker of a reply without a parsable rating
            failure = "unparsable" if row["score"] == -1 else None
        score = None if failure is not None else float(row["score"])
        rows.append({"model": str(row["model"]), "turn": int(row["turn"]), "score": score, "failure": failure})
    return pl.DataFrame(rows, schema={"model": pl.String, "turn": pl.Int64, "score": pl.Float64,
                                      "failure": pl.String})


def score_table(judgments: pl.DataFrame) -> pl.DataFrame:
    """Rows ``model, turn, mean_score, n, failed`` for turn 1, turn 2 and ``all``."""
    labelled = pl.concat([judgments.with_columns(pl.col("turn").cast(pl.String)),
                          judgments.with_columns(pl.lit("all").alias("turn"))])
    valid = pl.col("failure").is_null()
    return (labelled.group_by(["model", "turn"])
            .agg(pl.col("score").filter(valid).mean().alias("mean_score"),
                 valid.sum().alias("n"), (~valid).sum().alias("failed"))
            .sort(["model", "turn"]))


def import_judgments(path: str | Path, out_dir: str | Path) -> pl.DataFrame:
    table = score_table(load_fastchat_judgments(path))
    atomic_write_text(Path(out_dir) / "scores.csv", table.write_csv())
    return table
