"""Whether the study's conclusions survive a change of judge: the comparisons of ``mlit.results.analysis``
(the relative gain of each multilingual composition over its baselines, ``parallel_gain``; the score
difference of each dataset size over the smallest, ``size_effect``) computed from each judge's judgments,
side by side, with whether the estimate keeps its sign, whether the two 95% intervals overlap, and whether
the verdict (interval above 0, below 0, or containing it) is the same.

With ``overlap_only`` (the default) both judges' comparisons use only the judged turns both rated, so a
judge that rated a sample is compared with the other on that same sample, not with everything.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mlit.judges.agreement import KEY

# analysis -> (key columns, (estimate, interval low, interval high) columns) of its table in mlit.results.analysis
ANALYSES = {
    "parallel_gain": (["base_model", "dataset", "size", "composition", "comparison", "baseline", "lang"],
                      ("relative_gain_pct", "ci95_low_pct", "ci95_high_pct")),  # percent
    "size_effect": (["base_model", "composition", "lang", "dataset", "size", "baseline_dataset", "baseline_size"],
                    ("difference", "ci95_low", "ci95_high")),  # score points
}
SCHEMA = {"analysis": pl.String, "comparison": pl.String, "estimate_a": pl.Float64, "low_a": pl.Float64,
          "high_a": pl.Float64, "estimate_b": pl.Float64, "low_b": pl.Float64, "high_b": pl.Float64,
          "verdict_a": pl.String, "verdict_b": pl.String, "same_sign": pl.Boolean, "intervals_overlap": pl.Boolean,
          "same_verdict": pl.Boolean}


def verdict(low: float, high: float) -> str:
    """'higher' (the interval above 0), 'lower' (below 0) or 'unclear' (it contains 0, or is unknown)."""
    if low is None or high is None or np.isnan(low) or np.isnan(high):
        return "unclear"
    return "higher" if low > 0 else "lower" if high < 0 else "unclear"


def on_common_turns(long_a: pl.DataFrame, long_b: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both judges' rows restricted to the turns both scored (``cell, lang, question_id, turn``)."""
    scored = [frame.filter(pl.col("score").is_not_null()).select(KEY).unique() for frame in (long_a, long_b)]
    common = scored[0].join(scored[1], on=KEY, how="inner")
    return long_a.join(common, on=KEY, how="semi"), long_b.join(common, on=KEY, how="semi")


def _comparisons(long: pl.DataFrame, n_boot: int, seed: int) -> dict[str, pl.DataFrame]:
    from mlit.results.analysis import parallel_gain, size_effect

    return {"parallel_gain": parallel_gain(long, n_boot, seed), "size_effect": size_effect(long, n_boot, seed)}


def comparison_check(long_a: pl.DataFrame, long_b: pl.DataFrame, n_boot: int = 1000, seed: int = 0,
                     overlap_only: bool = True) -> pl.DataFrame:
    """One row per comparison either judge's judgments allow: judge A's and B's estimate and 95% interval,
    their verdicts, ``same_sign``, ``intervals_overlap`` and ``same_verdict`` (null where one judge has no
    estimate). ``long_a`` / ``long_b`` are ``mlit.results.tables.load_long`` frames of the same cells."""
    if overlap_only:
        long_a, long_b = on_common_turns(long_a, long_b)
    tables_a, tables_b = _comparisons(long_a, n_boot, seed), _comparisons(long_b, n_boot, seed)
    rows = []
    for analysis, (keys, columns) in ANALYSES.items():
        estimate = "estimate"
        picked = [table.select(keys + [pl.col(c).alias(n) for c, n in zip(columns, (estimate, "ci95_low", "ci95_high"))])
                  for table in (tables_a[analysis], tables_b[analysis])]
        joined = picked[0].join(picked[1], on=keys, how="full", coalesce=True, suffix="_b")
        for row in joined.sort(keys).iter_rows(named=True):
            a = (row[estimate], row["ci95_low"], row["ci95_high"])
            b = (row[f"{estimate}_b"], row["ci95_low_b"], row["ci95_high_b"])
            both = a[0] is not None and b[0] is not None
            va, vb = (verdict(*x[1:]) if x[0] is not None else None for x in (a, b))
            rows.append({"analysis": analysis, "comparison": "/".join(str(row[k]) for k in keys),
                         "estimate_a": a[0], "low_a": a[1], "high_a": a[2],
                         "estimate_b": b[0], "low_b": b[1], "high_b": b[2], "verdict_a": va, "verdict_b": vb,
                         "same_sign": bool(np.sign(a[0]) == np.sign(b[0])) if both else None,
                         "intervals_overlap": bool(a[1] <= b[2] and b[1] <= a[2]) if both else None,
                         "same_verdict": va == vb if both else None})
    return pl.DataFrame(rows, schema=SCHEMA)


def summary(check: pl.DataFrame) -> pl.DataFrame:
    """Per analysis: comparisons with both judges, and how many keep their sign, overlap and keep the verdict."""
    both = check.filter(pl.col("same_sign").is_not_null())
    return (both.group_by("analysis").agg(pl.len().alias("comparisons"), pl.col("same_sign").sum(),
                                          pl.col("intervals_overlap").sum(), pl.col("same_verdict").sum())
            .sort("analysis"))


def main_table_check(long_a: pl.DataFrame, long_b: pl.DataFrame, overlap_only: bool = True) -> pl.DataFrame:
    """The main table's cells (mean score per cell and evaluation language, and ``lang`` = ``average`` over
    the languages, as ``mlit.results.tables``' main table) under each judge: ``mean_a``, ``mean_b``,
    ``difference`` (B - A), ``n_a`` / ``n_b`` the scored turns, and each judge's ``rank_a`` / ``rank_b`` of
    the cell within its language (1: best), so a reordering of the cells shows."""
    from mlit.results.tables import CELL_COLUMNS

    if overlap_only:
        long_a, long_b = on_common_turns(long_a, long_b)

    def means(long: pl.DataFrame, side: str) -> pl.DataFrame:
        scored = long.filter(pl.col("score").is_not_null())
        per_lang = scored.group_by(CELL_COLUMNS + ["lang"]).agg(pl.col("score").mean().alias(f"mean_{side}"),
                                                                pl.len().alias(f"n_{side}"))
        average = scored.group_by(CELL_COLUMNS).agg(pl.col("score").mean().alias(f"mean_{side}"),
                                                    pl.len().alias(f"n_{side}")).with_columns(lang=pl.lit("average"))
        both = pl.concat([per_lang, average.select(per_lang.columns)])
        return both.with_columns(pl.col(f"mean_{side}").rank("min", descending=True).over("lang")
                                 .cast(pl.Int64).alias(f"rank_{side}"))

    joined = means(long_a, "a").join(means(long_b, "b"), on=CELL_COLUMNS + ["lang"], how="full", coalesce=True)
    return (joined.with_columns((pl.col("mean_b") - pl.col("mean_a")).alias("difference"))
            .select(CELL_COLUMNS + ["lang", "mean_a", "mean_b", "difference", "n_a", "n_b", "rank_a", "rank_b"])
            .sort(CELL_COLUMNS + ["lang"]))
