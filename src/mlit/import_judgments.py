"""Import FastChat / MT-Bench-X judgment files (``question_id, model, judge, user_prompt, judgment,
score, turn``) into a score table: the means of FastChat's ``show_result`` (over ratings that are not
-1), with the unparsable judgments (score -1) counted in ``failed`` instead of dropped silently."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mlit.io import atomic_write_text, read_jsonl


def load_fastchat_judgments(path: str | Path) -> pl.DataFrame:
    rows = []
    for number, row in enumerate(read_jsonl(path), start=1):
        missing = [field for field in ("model", "score", "turn") if field not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}; expected FastChat's judgment format")
        rows.append({"model": str(row["model"]), "turn": int(row["turn"]), "score": float(row["score"])})
    return pl.DataFrame(rows, schema={"model": pl.String, "turn": pl.Int64, "score": pl.Float64})


def score_table(judgments: pl.DataFrame) -> pl.DataFrame:
    """Rows ``model, turn, mean_score, n, failed`` for turn 1, turn 2 and ``all``."""
    labelled = pl.concat([judgments.with_columns(pl.col("turn").cast(pl.String)),
                          judgments.with_columns(pl.lit("all").alias("turn"))])
    valid = pl.col("score") != -1
    return (labelled.group_by(["model", "turn"])
            .agg(pl.col("score").filter(valid).mean().alias("mean_score"),
                 valid.sum().alias("n"), (~valid).sum().alias("failed"))
            .sort(["model", "turn"]))


def import_judgments(path: str | Path, out_dir: str | Path) -> pl.DataFrame:
    table = score_table(load_fastchat_judgments(path))
    atomic_write_text(Path(out_dir) / "scores.csv", table.write_csv())
    return table
