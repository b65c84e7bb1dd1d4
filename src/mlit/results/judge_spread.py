"""What the scores measure: the judge behind them and the spread of its ratings, and how many answers
were in the question's language.

A score is either a rating the judge gave (its reply held ``[[n]]``) or one a rule set without asking
it (``judge.off_language: score_1``: an off-language answer gets 1, its ``judgment`` is empty). A judge
that gives every answer it rates the same rating (the demo's tiny judge gives 7) makes every mean a
function of the rule alone: ``1 + (r - 1) x`` the share of answers it rated. ``judge_ratings`` counts
the ratings per judge and says so (``warning``); ``judge_caption`` is the line every table and plot
carries; ``on_language_rate`` is the share of answers in the question's language beside the scores.
"""

from __future__ import annotations

import polars as pl

CELL_COLUMNS = ["cell", "base_model", "dataset", "composition", "size", "seed"]
RATINGS = range(1, 11)


def with_judge(long: pl.DataFrame) -> pl.DataFrame:
    """``long`` with a ``judge`` column (judgments written by a test or an import may have none)."""
    if "judge" in long.columns:
        return long.with_columns(pl.col("judge").fill_null("unknown judge"))
    return long.with_columns(pl.lit("unknown judge").alias("judge"))


def judge_ratings(long: pl.DataFrame) -> pl.DataFrame:
    """Per judge: the turns it rated, the scores a rule set without it (``set_by_rule``), its failures,
    how often it gave each rating 1..10 (``rating_1`` ... ``rating_10``), how many distinct ratings,
    and a ``warning`` when it gave only one (a constant judge: the means measure the rule, not quality)."""
    long = with_judge(long)
    rated = pl.col("score").is_not_null() & pl.col("judgment").is_not_null()
    by_rule = pl.col("score").is_not_null() & pl.col("judgment").is_null()
    table = (long.group_by("judge", maintain_order=True)
             .agg(rated.sum().alias("rated"), by_rule.sum().alias("set_by_rule"),
                  pl.col("failed").sum().alias("failed"),
                  *[(rated & (pl.col("score") == r)).sum().alias(f"rating_{r}") for r in RATINGS],
                  pl.col("score").filter(rated).n_unique().alias("distinct_ratings"),
                  pl.col("score").filter(rated).mean().round(3).alias("mean_rating"))
             .sort("judge"))
    warnings = []
    for row in table.iter_rows(named=True):
        warnings.append(_warning(row))
    return table.with_columns(pl.Series("warning", warnings, dtype=pl.String))


def _constant(row: dict) -> int | None:
    """The one rating a judge gave to everything it rated, or None."""
    given = [r for r in RATINGS if row[f"rating_{r}"]]
    return given[0] if len(given) == 1 else None


def _warning(row: dict) -> str | None:
    if row["rated"] == 0:
        return "the judge rated nothing: every score was set by a rule (judge.off_language)"
    only = _constant(row)
    if only is None:
        return None
    rule = f"; the {row['set_by_rule']} set by a rule are 1" if row["set_by_rule"] else ""
    return (f"constant judge: every one of the {row['rated']} answers it rated got {only}{rule}, so a mean score "
            f"is 1 + {only - 1} x the share of answers rated: it measures the on-language rate, not quality")


def spread_text(row: dict) -> str:
    """``7 x1043`` style: each rating the judge gave and how often, most frequent first."""
    given = sorted(((row[f"rating_{r}"], r) for r in RATINGS if row[f"rating_{r}"]), reverse=True)
    if not given:
        return "no ratings"
    shown = ", ".join(f"{r}: {n}" for n, r in given[:6]) + (", ..." if len(given) > 6 else "")
    return f"ratings {shown}"


def judge_caption(ratings: pl.DataFrame) -> str:
    """One line naming each judge and its rating spread, with its warning (empty table: no judgments)."""
    parts = []
    for row in ratings.iter_rows(named=True):
        rule = f"; {row['set_by_rule']} scores set to 1 by judge.off_language, not by the judge" if row["set_by_rule"] else ""
        text = f"judge {row['judge']} ({spread_text(row)} over {row['rated']} rated turns{rule})"
        if row["warning"]:
            text += f" WARNING: {row['warning']}"
        parts.append(text)
    return "; ".join(parts) if parts else "no judgments"


def short_caption(ratings: pl.DataFrame) -> str:
    """The figure's line: the judges and their spread, short enough for a title."""
    parts = []
    for row in ratings.iter_rows(named=True):
        only = _constant(row)
        if only is None:
            spread = spread_text(row)
        elif row["set_by_rule"]:
            spread = f"rates everything {only}; off-language 1: scores = on-language rate"
        else:
            spread = f"rates everything {only}: the scores do not tell answers apart"
        parts.append(f"judge {row['judge']}: {spread}")
    return "; ".join(parts)


def on_language_rate(long: pl.DataFrame) -> pl.DataFrame:
    """Per cell: the percent of judged answer turns in the question's language, per evaluation
    language and over all of them (``all``), the table beside main_table."""
    if long.is_empty():
        return pl.DataFrame(schema={**{c: pl.String for c in CELL_COLUMNS}, "all": pl.Float64})
    on = pl.col("on_language").cast(pl.Float64).mean().mul(100).round(1)
    per_lang = (long.group_by(CELL_COLUMNS + ["lang"]).agg(on.alias("on_language_pct"))
                .pivot(on="lang", index=CELL_COLUMNS, values="on_language_pct"))
    langs = sorted(c for c in per_lang.columns if c not in CELL_COLUMNS)
    overall = long.group_by(CELL_COLUMNS).agg(on.alias("all"))
    return per_lang.select(CELL_COLUMNS + langs).join(overall, on=CELL_COLUMNS).sort(CELL_COLUMNS)
