"""A stratified sample of the judged turns, for a second (dearer) judge: in every stratum of (cell,
language, category, turn), a share of its items, at least one, so that every stratum has ratings by both
judges.

Which items: within a stratum, those with the smallest hash of (seed, cell, language, question, turn).
The sample is deterministic given the seed, does not depend on the order of the items, and adding a cell
or a language to a grid leaves the sample of the others as it was (their judgments stay in the cache).
"""

from __future__ import annotations

import polars as pl

from mlit.stratified import per_stratum, rank_key

STRATA = ("cell", "lang", "category", "turn")
ITEM = ("cell", "lang", "question_id", "turn")


def stratified_sample(items: pl.DataFrame, fraction: float, seed: int = 0, strata=STRATA) -> pl.DataFrame:
    """The sampled rows of ``items`` (columns ``cell, lang, question_id, turn`` and the strata's), sorted."""
    per_stratum(0, fraction)  # a fraction outside (0, 1] raises before anything is drawn
    missing = [name for name in set(ITEM) | set(strata) if name not in items.columns]
    if missing:
        raise ValueError(f"the items lack column(s) {sorted(missing)}; a sample is drawn by {list(strata)}")
    ranked = items.with_columns(pl.struct(list(ITEM)).map_elements(
        lambda row: rank_key(seed, tuple(row[name] for name in ITEM)), return_dtype=pl.String).alias("_rank"))
    sizes = ranked.group_by(list(strata)).agg(pl.len().alias("_size"))
    ranked = ranked.join(sizes, on=list(strata)).with_columns(
        pl.col("_rank").rank("ordinal").over(list(strata)).alias("_position"))
    take = pl.col("_size").map_elements(lambda size: per_stratum(size, fraction), return_dtype=pl.Int64)
    return (ranked.filter(pl.col("_position") <= take).drop(["_rank", "_size", "_position"])
            .sort(list(ITEM)))
