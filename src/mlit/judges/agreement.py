"""Agreement of two judges on the answers both rated: one row per group (all, each language, category and
turn) with the statistics of ``mlit.annotation.agreement`` (Pearson, Spearman, Kendall tau-b, quadratic
weighted kappa, Krippendorff's interval alpha), exact and within-1 agreement and the mean difference
(judge B minus judge A), each with a seeded percentile bootstrap 95% interval over the rated items.

Ratings are keyed by (cell, language, question, turn). A failed judgment (score null) is not a rating:
an item is in the overlap only if both judges scored it; the failures on each side are counted per group.

Every statistic is computed from the two judges' joint table of counts (judge A's value x judge B's
value): ratings take few distinct values (1..10, halves for medians), so a statistic costs the same for
ten items or a whole grid, and a bootstrap resample is a multinomial draw of that table (resampling the
items with replacement draws exactly that). ``tests/test_judges.py`` checks each against the item-wise
functions of ``mlit.annotation.agreement``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

KEY = ["cell", "lang", "question_id", "turn"]
STATISTICS = ("pearson", "spearman", "kendall_tau_b", "quadratic_weighted_kappa", "krippendorff_alpha",
              "exact", "within_one", "mean_difference")
GROUPINGS = ("all", "lang", "category", "turn")  # the ``by`` column of the agreement table
RATINGS_SCHEMA = {"cell": pl.String, "lang": pl.String, "question_id": pl.String, "turn": pl.Int64,
                  "category": pl.String, "score": pl.Float64, "rule_scored": pl.Boolean}


class RatingsError(ValueError):
    """Ratings that cannot be compared: a duplicated key, a missing column."""


def ratings_frame(rows: list[dict], source: str) -> pl.DataFrame:
    """Rows ``cell, lang, question_id, turn, category, score`` (score None: a failed judgment); a key
    rated twice raises, naming ``source``."""
    frame = pl.DataFrame([{name: row.get(name) for name in RATINGS_SCHEMA} for row in rows], schema=RATINGS_SCHEMA)
    duplicated = frame.filter(pl.struct(KEY).is_duplicated())
    if duplicated.height:
        first = duplicated.row(0, named=True)
        raise RatingsError(f"{source}: ({', '.join(f'{k}={first[k]}' for k in KEY)}) is rated "
                           f"{duplicated.height} times; each (cell, language, question, turn) once")
    return frame


def rule_scored(row: dict) -> bool:
    """Whether a judgment row's score was set by the off-language rule (``judge.off_language: score_1``: the
    answer is not in the question's language, rated 1 without asking the judge), not by the judge."""
    return row.get("on_language") is False and row.get("judgment") is None and row.get("failure") is None \
        and row.get("score") is not None


def judgment_ratings(paths: list[str], source: str | None = None) -> pl.DataFrame:
    """The ratings of mlit judgment files (``results/judgments/<cell>/<LANG>.jsonl``): ``model`` is the cell;
    ``rule_scored`` says which scores the off-language rule set (``rule_scored``)."""
    from mlit.files import read_jsonl

    rows = []
    for path in paths:
        for number, row in enumerate(read_jsonl(path), start=1):
            missing = [name for name in ("model", "lang", "question_id", "turn", "score") if name not in row]
            if missing:
                raise RatingsError(f"{path}:{number}: missing field(s) {missing}; expected an mlit judgment row")
            rows.append({"cell": row["model"], "lang": row["lang"], "question_id": str(row["question_id"]),
                         "turn": int(row["turn"]), "category": row.get("category"),
                         "score": None if row["score"] is None else float(row["score"]), "rule_scored": rule_scored(row)})
    return ratings_frame(rows, source or ", ".join(paths))


def without_rule_on_both(a: pl.DataFrame, b: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Both judges' ratings less the turns the off-language rule scored for both (they agree there by
    construction, and no judge rated them), and how many turns that leaves out. A turn the rule scored for
    one judge only stays: there the rule's 1 meets the other judge's own rating."""
    both = a.filter(pl.col("rule_scored")).select(KEY).join(b.filter(pl.col("rule_scored")).select(KEY), on=KEY)
    return a.join(both, on=KEY, how="anti"), b.join(both, on=KEY, how="anti"), both.height


def paired(a: pl.DataFrame, b: pl.DataFrame) -> pl.DataFrame:
    """Every key either judge rated: ``score_a``, ``score_b`` (null where that judge has no score), and the
    category (judge A's, else B's)."""
    joined = a.join(b, on=KEY, how="full", coalesce=True, suffix="_b")
    return joined.select(KEY + [pl.coalesce("category", "category_b").alias("category"),
                                pl.col("score").alias("score_a"), pl.col("score_b")])


def joint_table(score_a, score_b) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts): the distinct values of both judges and counts[i, j], the items judge A rated
    values[i] and judge B values[j]."""
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    values = np.unique(np.concatenate([a, b]))
    k = len(values)
    codes = np.searchsorted(values, a) * k + np.searchsorted(values, b)
    return values, np.bincount(codes, minlength=k * k).reshape(k, k).astype(float)


def _weighted_pearson(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> float:
    """Pearson's r of x (rows) and y (columns) over the items counted in ``counts``."""
    n = counts.sum()
    mx, my = (counts.sum(1) @ x) / n, (counts.sum(0) @ y) / n
    dx, dy = x - mx, y - my
    sxy = dx @ counts @ dy
    denominator = np.sqrt((counts.sum(1) @ dx**2) * (counts.sum(0) @ dy**2))
    return float(sxy / denominator) if denominator > 1e-12 * n else float("nan")


def _average_ranks(marginal: np.ndarray) -> np.ndarray:
    """1-based average rank of each value, from how many items have it."""
    before = np.cumsum(marginal) - marginal
    return before + (marginal + 1) / 2


def table_statistics(values: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Every statistic of ``STATISTICS`` from a joint table (``joint_table``); NaN where undefined (no
    items, or no variation for a correlation)."""
    n = counts.sum()
    if n == 0:
        return {name: float("nan") for name in STATISTICS}
    rows, columns = counts.sum(1), counts.sum(0)
    difference = values[None, :] - values[:, None]  # B - A
    squared = difference**2
    result = {"mean_difference": float((counts * difference).sum() / n),
              "exact": float(np.trace(counts) / n),
              "within_one": float(counts[np.abs(difference) <= 1].sum() / n),
              "pearson": _weighted_pearson(values, values, counts),
              "spearman": _weighted_pearson(_average_ranks(rows), _average_ranks(columns), counts)}
    # Kendall's tau-b: concordant pairs are a cell and any cell below-right of it, discordant below-left
    below_right = np.zeros_like(counts)
    below_right[:-1, :-1] = np.cumsum(np.cumsum(counts[::-1, ::-1], 0), 1)[::-1, ::-1][1:, 1:]
    below_left = np.zeros_like(counts)
    below_left[:-1, 1:] = np.cumsum(np.cumsum(counts[::-1, :], 0), 1)[::-1, :][1:, :-1]
    concordant, discordant = (counts * below_right).sum(), (counts * below_left).sum()
    tied_a_only = ((rows**2 - (counts**2).sum(1)) / 2).sum()  # same row, another column
    tied_b_only = ((columns**2 - (counts**2).sum(0)) / 2).sum()
    denominator = np.sqrt((concordant + discordant + tied_a_only) * (concordant + discordant + tied_b_only))
    result["kendall_tau_b"] = float((concordant - discordant) / denominator) if denominator else float("nan")
    # quadratic weighted kappa: the weights' scale (1 / (k - 1)^2 over the rating scale) cancels in the ratio
    expected = (np.outer(rows, columns) / n * squared).sum()
    result["quadratic_weighted_kappa"] = float(1 - (counts * squared).sum() / expected) if expected else float("nan")
    # Krippendorff's interval alpha with two raters and every unit rated by both: D_o = sum (a - b)^2 / N,
    # D_e = 2 S / (2N - 1) with S the squared deviations of the 2N pooled ratings from their mean
    pooled = rows + columns
    mean = (pooled @ values) / (2 * n)
    spread = pooled @ (values - mean) ** 2
    disagreement_expected = 2 * spread / (2 * n - 1) if n > 1 else 0.0
    result["krippendorff_alpha"] = float(1 - ((counts * squared).sum() / n) / disagreement_expected) \
        if disagreement_expected else float("nan")
    return result


def bootstrap(values: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, tuple]:
    """Percentile 95% interval of each statistic over ``n_boot`` resamples of the items (with replacement)."""
    n = int(counts.sum())
    if n == 0 or n_boot <= 0:
        return {name: (float("nan"), float("nan")) for name in STATISTICS}
    draws = rng.multinomial(n, counts.ravel() / n, size=n_boot).reshape(n_boot, *counts.shape)
    samples = {name: [] for name in STATISTICS}
    for draw in draws:
        for name, value in table_statistics(values, draw.astype(float)).items():
            samples[name].append(value)
    intervals = {}
    for name, series in samples.items():
        series = np.asarray(series)
        finite = series[~np.isnan(series)]
        intervals[name] = tuple(float(x) for x in np.percentile(finite, [2.5, 97.5])) if finite.size else \
            (float("nan"), float("nan"))
    return intervals


def agreement_table(a: pl.DataFrame, b: pl.DataFrame, judge_a: str = "a", judge_b: str = "b",
                    n_boot: int = 1000, seed: int = 0, groupings=GROUPINGS) -> pl.DataFrame:
    """One row per group (``by`` = all, lang, category, turn; ``group`` its value) of the items both judges
    scored: ``n``, ``failed_a`` / ``failed_b`` (keys the other judge rated but this one failed or lacks),
    each statistic and its ``_low`` / ``_high`` bootstrap bounds (seeded: the same inputs give the same file)."""
    both = paired(a, b)
    rows = []
    for index, by in enumerate(groupings):
        parts = [("all", both)] if by == "all" else \
            sorted(((str(key[0]), part) for key, part in both.group_by(by)), key=lambda item: item[0])
        for group_index, (group, part) in enumerate(parts):
            scored = part.filter(pl.col("score_a").is_not_null() & pl.col("score_b").is_not_null())
            row = {"judge_a": judge_a, "judge_b": judge_b, "by": by, "group": group, "n": scored.height,
                   "failed_a": part.filter(pl.col("score_a").is_null()).height,
                   "failed_b": part.filter(pl.col("score_b").is_null()).height}
            values, counts = joint_table(scored["score_a"].to_numpy(), scored["score_b"].to_numpy())
            point = table_statistics(values, counts)
            rng = np.random.default_rng([seed, index, group_index])  # each group its own stream
            interval = bootstrap(values, counts, n_boot, rng)
            for name in STATISTICS:
                row[name] = point[name]
                row[f"{name}_low"], row[f"{name}_high"] = interval[name]
            rows.append(row)
    schema = {"judge_a": pl.String, "judge_b": pl.String, "by": pl.String, "group": pl.String, "n": pl.Int64,
              "failed_a": pl.Int64, "failed_b": pl.Int64,
              **{f"{name}{end}": pl.Float64 for name in STATISTICS for end in ("", "_low", "_high")}}
    return pl.DataFrame(rows, schema=schema)


def markdown(table: pl.DataFrame, digits: int = 2) -> str:
    """The agreement table for people: each statistic as ``value [low, high]``."""
    def show(value) -> str:
        return "—" if value is None or np.isnan(value) else f"{value:.{digits}f}"

    names = {"pearson": "Pearson", "spearman": "Spearman", "kendall_tau_b": "Kendall", "quadratic_weighted_kappa":
             "QWK", "krippendorff_alpha": "α", "exact": "exact", "within_one": "±1", "mean_difference": "B−A"}
    header = ["by", "group", "n"] + list(names.values())
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table.iter_rows(named=True):
        cells = [row["by"], row["group"], str(row["n"])]
        cells += [f"{show(row[s])} [{show(row[f'{s}_low'])}, {show(row[f'{s}_high'])}]" for s in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_agreement(table: pl.DataFrame, out_stem) -> list:
    """``<stem>.csv`` and ``<stem>.md``, written atomically."""
    from pathlib import Path

    from mlit.files import atomic_write_text

    stem = Path(out_stem)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv, table.write_csv())
    judges = table.row(0, named=True) if table.height else {"judge_a": "a", "judge_b": "b"}
    atomic_write_text(md, f"Agreement of {judges['judge_b']} (B) with {judges['judge_a']} (A)\n\n" + markdown(table))
    return [csv, md]
