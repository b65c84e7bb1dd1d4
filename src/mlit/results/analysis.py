"""The study's comparisons over the long judgment table.

- Cross-lingual effect: for each evaluation language, the relative gain of every multilingual
  composition that contains it (parallel, or ``_sampled``) over the monolingual composition of that
  language and over the English-only composition, and pooled over the languages; same base model,
  dataset, size; with a paired bootstrap 95% interval over questions.
- Dataset size (Superficial Alignment Hypothesis): the score per size, per language and composition,
  and pooled over the languages (``lang`` = ALL).

Per question, the score is the mean of its judged turns (failed judgments left out) averaged over
seeds; questions without a score in both compositions are left out of a comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from mlit.records import FAILURE_KINDS
from mlit.judge.client import judge_cost
from mlit.langs import parse_composition
from mlit.results.judge_spread import with_judge
from mlit.results.plotting import pyplot, save_figure

GROUP = ["base_model", "dataset", "size"]

# judge_health's count column for each failure kind of a judgment row (mlit.records.FAILURE_KINDS)
FAILURE_COLUMNS = {"unparsable": "unparsable_replies", "api_error": "api_errors"}
assert set(FAILURE_COLUMNS) == set(FAILURE_KINDS), "every failure kind needs a judge_health column"


def question_scores(long: pl.DataFrame, by_seed: bool = False) -> pl.DataFrame:
    """Mean of the judged turns per question (per seed with ``by_seed``, else averaged over seeds)."""
    keys = GROUP + ["composition", "lang", "question_id"] + (["seed"] if by_seed else [])
    return long.filter(pl.col("score").is_not_null()).group_by(keys).agg(pl.col("score").mean().alias("score"))


def _paired_arrays(first: dict, second: dict) -> tuple[np.ndarray, np.ndarray]:
    """Seeds x questions arrays over the (seed, question) pairs both sides have; NaN where missing."""
    seeds = sorted({s for s, _ in first} & {s for s, _ in second})
    questions = sorted({q for _, q in first} & {q for _, q in second})
    a = np.array([[first.get((s, q), np.nan) for q in questions] for s in seeds], dtype=float)
    b = np.array([[second.get((s, q), np.nan) for q in questions] for s in seeds], dtype=float)
    both = ~(np.isnan(a) | np.isnan(b))
    a[~both] = np.nan
    b[~both] = np.nan
    return a, b


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, difference: bool = False):
    """Percentile 95% interval of mean(a)/mean(b) - 1 (or mean(a) - mean(b)) over paired resamples:
    seeds with replacement (when there are several), then questions with replacement."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    rng = np.random.default_rng(seed)
    n_seeds, n_questions = a.shape
    seed_index = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    question_index = rng.integers(0, n_questions, size=(n_boot, n_questions))
    picked_a = a[seed_index[:, :, None], question_index[:, None, :]]
    picked_b = b[seed_index[:, :, None], question_index[:, None, :]]
    mean_a = np.nanmean(picked_a.reshape(n_boot, -1), axis=1)
    mean_b = np.nanmean(picked_b.reshape(n_boot, -1), axis=1)
    values = mean_a - mean_b if difference else mean_a / mean_b - 1
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_relative_gain(multi: np.ndarray, mono: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of mean(multi)/mean(mono) - 1 over resampled question pairs."""
    return bootstrap_ratio(multi, mono, n_boot, seed)


# The baselines a multilingual composition is compared with (column ``comparison`` of parallel_gain)
SAME_LANGUAGE = "monolingual_same_language"  # the monolingual model of the evaluation language (the study's)
ENGLISH_ONLY = "english_only"  # the English-only model: the common practice the study argues against
ALL_LANGUAGES = "ALL"  # the ``lang`` of a row pooled over the evaluation languages


def _scores_by(frame: pl.DataFrame) -> dict[tuple[str, str], dict[tuple[int, str], float]]:
    """{(composition, lang): {(seed, question_id): score}}"""
    return {(comp, lang): {(seed, q): score for seed, q, score in
                           part.select(["seed", "question_id", "score"]).iter_rows()}
            for (comp, lang), part in frame.group_by(["composition", "lang"], maintain_order=True)}


def _gain_row(group: dict, lang: str, comp: str, comparison: str, baseline: str, multi: dict, base: dict,
              n_boot: int, seed: int) -> dict | None:
    a, b = _paired_arrays(multi, base)
    if a.size == 0 or np.isnan(a).all():
        return None
    low, high = bootstrap_ratio(a, b, n_boot, seed)
    mean_a, mean_b = float(np.nanmean(a)), float(np.nanmean(b))
    return {**group, "lang": lang, "composition": comp, "comparison": comparison, "baseline": baseline,
            "mean_multilingual": round(mean_a, 4), "mean_baseline": round(mean_b, 4),
            "relative_gain_pct": round(100 * (mean_a / mean_b - 1), 2), "ci95_low_pct": round(100 * low, 2),
            "ci95_high_pct": round(100 * high, 2), "n_questions": a.shape[1], "n_seeds": a.shape[0]}


def parallel_gain(long: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The relative gain of every multilingual composition (parallel or ``_sampled``), per language it
    contains, over two baselines (``comparison``): the monolingual model of that language
    (``monolingual_same_language``, the study's comparison) and the English-only model
    (``english_only``); plus, per comparison, a row with ``lang`` = ``ALL`` pooling the languages
    (question and language pairs resampled together). Same base model, dataset and size; paired
    bootstrap 95% interval. Gains and intervals in percent (``*_pct``), as in the plot."""
    scores = question_scores(long, by_seed=True)
    rows = []
    for key, frame in scores.group_by(GROUP, maintain_order=True):
        group = dict(zip(GROUP, key))
        by_cell = _scores_by(frame)
        for comp in sorted({c for c, _ in by_cell}):
            parsed = composition_or_none(comp)
            if parsed is None or parsed.monolingual:  # an evaluated model (as_is) is no composition
                continue
            langs = [lang for lang in parsed.languages if (comp, lang) in by_cell]
            for comparison, baseline_of in ((SAME_LANGUAGE, lambda lang: lang), (ENGLISH_ONLY, lambda lang: "EN")):
                pooled_multi, pooled_base, baselines = {}, {}, []
                for lang in langs:
                    baseline = baseline_of(lang)
                    base = by_cell.get((baseline, lang))
                    if base is None:
                        continue
                    multi = by_cell[(comp, lang)]
                    row = _gain_row(group, lang, comp, comparison, baseline, multi, base, n_boot, seed)
                    if row is not None:
                        rows.append(row)
                        baselines.append(baseline)
                        pooled_multi.update({(s, (lang, q)): v for (s, q), v in multi.items()})
                        pooled_base.update({(s, (lang, q)): v for (s, q), v in base.items()})
                if len(baselines) > 1:
                    row = _gain_row(group, ALL_LANGUAGES, comp, comparison, "+".join(sorted(set(baselines))),
                                    pooled_multi, pooled_base, n_boot, seed)
                    if row is not None:
                        rows.append(row)
    schema = {"base_model": pl.String, "dataset": pl.String, "size": pl.String, "lang": pl.String,
              "composition": pl.String, "comparison": pl.String, "baseline": pl.String,
              "mean_multilingual": pl.Float64, "mean_baseline": pl.Float64, "relative_gain_pct": pl.Float64,
              "ci95_low_pct": pl.Float64, "ci95_high_pct": pl.Float64, "n_questions": pl.Int64, "n_seeds": pl.Int64}
    # sorted: the same judgments give the same file, row for row
    return pl.DataFrame(rows, schema=schema).sort(["base_model", "dataset", "size", "comparison", "composition", "lang"])


def size_effect(long: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Every (dataset, size) against the smallest training set of the same base model, composition and
    evaluation language, across datasets (Lima-X-sized vs Bactrian-X-sized and the sizes between):
    the score difference and its paired bootstrap 95% interval. Sets are ordered by examples per
    language; a 'full' set of unknown size sorts last within its dataset."""
    keyed = long.with_columns(pl.col("examples_per_language").fill_null(-1).alias("_examples"))
    scores = with_pooled_languages(
        keyed.filter(pl.col("score").is_not_null())
        .group_by(["base_model", "dataset", "size", "_examples", "composition", "lang", "question_id", "seed"])
        .agg(pl.col("score").mean()))
    rows = []
    for (model, comp, lang), frame in scores.group_by(["base_model", "composition", "lang"], maintain_order=True):
        sets = {(dataset, size, examples): {(s, q): v for s, q, v in part.select(["seed", "question_id",
                                                                                  "score"]).iter_rows()}
                for (dataset, size, examples), part in frame.group_by(["dataset", "size", "_examples"])}

        def order(item):
            dataset, size, examples = item
            return (examples if examples >= 0 else float("inf"), size == "full", dataset)

        ordered = sorted(sets, key=order)
        base = ordered[0]
        for point in ordered[1:]:
            a, b = _paired_arrays(sets[point], sets[base])
            if a.size == 0 or np.isnan(a).all():
                continue
            low, high = bootstrap_ratio(a, b, n_boot, seed, difference=True)
            rows.append({"base_model": model, "composition": comp, "lang": lang, "dataset": point[0],
                         "size": point[1], "examples_per_language": point[2] if point[2] >= 0 else None,
                         "baseline_dataset": base[0], "baseline_size": base[1],
                         "mean": round(float(np.nanmean(a)), 4), "mean_baseline": round(float(np.nanmean(b)), 4),
                         "difference": round(float(np.nanmean(a) - np.nanmean(b)), 4),
                         "ci95_low": round(low, 4), "ci95_high": round(high, 4), "n_questions": a.shape[1]})
    schema = {"base_model": pl.String, "composition": pl.String, "lang": pl.String, "dataset": pl.String,
              "size": pl.String, "examples_per_language": pl.Int64, "baseline_dataset": pl.String,
              "baseline_size": pl.String, "mean": pl.Float64, "mean_baseline": pl.Float64, "difference": pl.Float64,
              "ci95_low": pl.Float64, "ci95_high": pl.Float64, "n_questions": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(["base_model", "composition", "lang", "dataset", "size"])


def size_order(sizes) -> list[str]:
    return sorted({str(s) for s in sizes}, key=lambda s: (s == "full", int(s) if s.isdigit() else 0))


def with_pooled_languages(scores: pl.DataFrame) -> pl.DataFrame:
    """The rows again with ``lang`` = ALL and the question keyed by its language, so that a mean or a
    paired resample over them pools the evaluation languages (as main_table's average does)."""
    pooled = scores.with_columns(pl.concat_str([pl.col("lang"), pl.col("question_id").cast(pl.String)],
                                               separator=":").alias("question_id"),
                                 pl.lit(ALL_LANGUAGES).alias("lang"))
    return pl.concat([scores.with_columns(pl.col("question_id").cast(pl.String)), pooled.select(scores.columns)])


def composition_or_none(name: str):
    """The parsed training composition, or None for a cell that is none (an evaluated model: ``as_is``)."""
    try:
        return parse_composition(name)
    except ValueError:
        return None


def trained_per_language(composition: str, examples_per_language: int | None) -> float | None:
    """Examples per language as trained: the size for a monolingual or parallel set; for a ``_sampled``
    one (each item in one random language) the size over its languages, on average."""
    parsed = composition_or_none(composition)
    if examples_per_language is None or parsed is None:
        return None
    return examples_per_language / len(parsed.languages) if parsed.sampled else float(examples_per_language)


def _mean_interval(values: list[float], n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean over questions."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return float(data.mean()), float(data.mean())
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def score_by_size(long: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Mean question score per size, per evaluation language and pooled over them (``lang`` = ALL), with
    ``trained_per_language`` (examples per language as trained: a ``_sampled`` set's size over its
    languages) and a bootstrap 95% interval over questions; rows in numeric order of size."""
    if "examples_per_language" not in long.columns:
        long = long.with_columns(pl.lit(None, dtype=pl.Int64).alias("examples_per_language"))
    # an evaluated model (base_models[].evaluate_only) has no training set: not on a size axis
    long = long.filter(pl.col("composition").map_elements(lambda c: composition_or_none(c) is not None,
                                                          return_dtype=pl.Boolean))
    sizes = dict(long.select(["size", "examples_per_language"]).unique(subset=["size"]).iter_rows())
    grouped = (with_pooled_languages(question_scores(long))
               .group_by(["base_model", "dataset", "composition", "lang", "size"])
               .agg(pl.col("score").mean().round(4).alias("mean_score"), pl.len().alias("n_questions"),
                    pl.col("score").alias("_scores")))
    rows = []
    for row in grouped.iter_rows(named=True):
        low, high = _mean_interval(row.pop("_scores"), n_boot, seed)
        trained = trained_per_language(row["composition"], sizes.get(row["size"]))
        rows.append({**row, "trained_per_language": None if trained is None else round(trained, 1),
                     "ci95_low": round(low, 4), "ci95_high": round(high, 4)})
    schema = {"base_model": pl.String, "dataset": pl.String, "composition": pl.String, "lang": pl.String,
              "size": pl.String, "trained_per_language": pl.Float64, "mean_score": pl.Float64,
              "ci95_low": pl.Float64, "ci95_high": pl.Float64, "n_questions": pl.Int64}
    order = {size: i for i, size in enumerate(size_order(sizes))}
    return (pl.DataFrame(rows, schema=schema).with_columns(pl.col("size").replace_strict(order).alias("_order"))
            .sort(["base_model", "dataset", "composition", "lang", "_order"]).drop("_order"))


def plot_score_by_size(table: pl.DataFrame, out_stem: Path, note: str | None = None) -> list[Path]:
    """Score against examples per language as trained (log axis; a ``_sampled`` set sits at its size over
    its languages), with 95% intervals: one panel per language and one pooled, one line per composition."""
    plt = pyplot()

    langs = sorted(lang for lang in table["lang"].unique().to_list() if lang != ALL_LANGUAGES)
    langs += [ALL_LANGUAGES] if ALL_LANGUAGES in set(table["lang"].to_list()) else []
    known = [x for x in table["trained_per_language"].to_list() if x is not None]
    unknown_at = 2 * max(known) if known else 1.0  # a 'full' set of unknown size: right of the rest
    fig, axes = plt.subplots(1, max(1, len(langs)), figsize=(3.2 * max(1, len(langs)), 3.4), sharey=True,
                             squeeze=False)
    keys = sorted(set(table.select(["base_model", "dataset", "composition"]).iter_rows()))
    colours = {key: f"C{i % 10}" for i, key in enumerate(keys)}  # one colour per line in every panel
    for ax, lang in zip(axes[0], langs):
        part = table.filter(pl.col("lang") == lang)
        ticks = set()
        for (model, dataset, comp), line in part.group_by(["base_model", "dataset", "composition"],
                                                          maintain_order=True):
            line = line.with_columns(pl.col("trained_per_language").fill_null(unknown_at)).sort("trained_per_language")
            xs, ys = line["trained_per_language"].to_list(), line["mean_score"].to_list()
            err = [[y - lo for y, lo in zip(ys, line["ci95_low"])], [hi - y for y, hi in zip(ys, line["ci95_high"])]]
            container = ax.errorbar(xs, ys, yerr=err, marker="o", capsize=2, color=colours[(model, dataset, comp)],
                                    label=f"{comp} ({model}, {dataset})")
            container.lines[0].set_gid(f"line|{lang}|{comp}|{model}|{dataset}")
            container.lines[2][0].set_gid(f"interval|{lang}|{comp}|{model}|{dataset}")
            ticks.update(xs)
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks), ["full" if x == unknown_at and x not in known else f"{x:g}" for x in sorted(ticks)],
                      fontsize=7)
        ax.minorticks_off()
        ax.set_title("all languages (pooled)" if lang == ALL_LANGUAGES else f"MT-Bench-X {lang}")
        ax.set_xlabel("examples per language as trained")
    axes[0][0].set_ylabel("mean judge score (1-10), 95% interval")
    axes[0][-1].legend(fontsize=6, loc="best")
    return save_figure(fig, out_stem, note)


def plot_parallel_gain(gain: pl.DataFrame, out_stem: Path, note: str | None = None) -> list[Path]:
    """The relative gain (%) of each multilingual composition with its 95% interval: one panel per
    comparison (over the same language's monolingual model, over the English-only model), one group
    of bars per evaluation language (and ALL) that the panel has, one bar per composition and size
    that has a gain there (no empty slots). A grid without comparisons gets a figure saying so."""
    plt = pyplot()

    comparisons = [c for c in (SAME_LANGUAGE, ENGLISH_ONLY) if c in set(gain["comparison"].to_list())] or [SAME_LANGUAGE]
    sizes = size_order(gain["size"].unique().to_list())
    fig, axes = plt.subplots(1, len(comparisons), figsize=(6.0 * len(comparisons), 3.4), sharey=True, squeeze=False)
    several_models = len(set(gain.select(["base_model", "dataset"]).iter_rows())) > 1
    keys = sorted(set(gain.select(["base_model", "dataset", "composition", "size"]).iter_rows()),
                  key=lambda k: (k[0], k[1], k[2], sizes.index(k[3])))
    colours = {key: f"C{i % 10}" for i, key in enumerate(keys)}  # one colour per series in both panels
    for ax, comparison in zip(axes[0], comparisons):
        part = gain.filter(pl.col("comparison") == comparison)
        langs = sorted({lang for lang in part["lang"].to_list() if lang != ALL_LANGUAGES})
        langs += [ALL_LANGUAGES] if ALL_LANGUAGES in set(part["lang"].to_list()) else []
        x = 0.0
        centres, labelled = [], set()
        for lang in langs:
            here = sorted(part.filter(pl.col("lang") == lang).iter_rows(named=True),
                          key=lambda r: (r["base_model"], r["dataset"], r["composition"], sizes.index(r["size"])))
            width = 0.8 / len(here)
            for k, row in enumerate(here):
                key = (row["base_model"], row["dataset"], row["composition"], row["size"])
                label = f"{row['composition']}, {row['size']}" + (f" ({key[0]}, {key[1]})" if several_models else "")
                if key in labelled:
                    label = None
                labelled.add(key)
                value = row["relative_gain_pct"]
                bars = ax.bar([x + k * width], [value], width=width, color=colours[key], label=label,
                              yerr=[[value - row["ci95_low_pct"]], [row["ci95_high_pct"] - value]], capsize=2)
                bars[0].set_gid(f"bar|{comparison}|{row['composition']}|{row['size']}|{key[0]}|{key[1]}|{lang}")
            centres.append(x + 0.4 - width / 2)
            x += 1.0
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(centres, langs)
        ax.set_xlim(-0.3, max(len(langs), 3) - 0.1)  # a panel with one language keeps bars of the usual width
        ax.set_xlabel("evaluation language (ALL: pooled over them)")
        ax.set_title({SAME_LANGUAGE: "over the same language's monolingual model",
                      ENGLISH_ONLY: "over the English-only model"}[comparison], fontsize=9)
        if not langs:
            ax.text(0.5, 0.5, "no multilingual composition with a baseline in this grid", ha="center",
                    transform=ax.transAxes, fontsize=8)
        else:
            ax.legend(fontsize=6, loc="best")
    axes[0][0].set_ylabel("relative gain (%), 95% interval")
    return save_figure(fig, out_stem, note)


def pooled_over(long: pl.DataFrame) -> str:
    """What a plot that averages per composition pools: the sizes, base models and datasets of the grid."""
    parts = [f"sizes {', '.join(size_order(long['size'].unique().to_list()))}"]
    for column, name in (("base_model", "base models"), ("dataset", "datasets"), ("seed", "seeds")):
        values = sorted(str(v) for v in long[column].unique().to_list())
        if len(values) > 1:
            parts.append(f"{name} {', '.join(values)}")
    return "mean over " + "; ".join(parts)


def plot_heatmap(long: pl.DataFrame, out_stem: Path, note: str | None = None) -> list[Path]:
    """Mean score per training composition (rows) and evaluation language (columns), pooled over the
    sizes (and base models, datasets, seeds) of the grid: the title says which."""
    plt = pyplot()

    means = question_scores(long).group_by(["composition", "lang"]).agg(pl.col("score").mean())
    comps = sorted(means["composition"].unique().to_list())
    langs = sorted(means["lang"].unique().to_list())
    grid = np.full((len(comps), len(langs)), np.nan)
    for comp, lang, score in means.iter_rows():
        grid[comps.index(comp), langs.index(lang)] = score
    fig, ax = plt.subplots(figsize=(1.2 * len(langs) + 2, 0.5 * len(comps) + 1.5))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", gid="heatmap")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(comps)), comps)
    low, high = np.nanmin(grid), np.nanmax(grid)
    for i in range(len(comps)):
        for j in range(len(langs)):
            if not np.isnan(grid[i, j]):
                bright = high > low and (grid[i, j] - low) / (high - low) > 0.6
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if bright else "white")
    ax.set_xlabel("evaluation language")
    ax.set_ylabel("training composition")
    ax.set_title(pooled_over(long), fontsize=8)
    fig.colorbar(image, ax=ax, label="mean judge score")
    return save_figure(fig, out_stem, note)


def plot_category_bars(long: pl.DataFrame, out_stem: Path, note: str | None = None) -> list[Path]:
    """Per evaluation language, the mean score per MT-Bench category of each training composition
    (bars side by side: parallel vs monolingual vs sampled), as MT-Bench-X draws it, pooled over the
    sizes (and base models, datasets, seeds): the first panel's title says which."""
    plt = pyplot()

    from mlit.data.mtbench import CATEGORIES

    means = (long.filter(pl.col("score").is_not_null())
             .group_by(["lang", "composition", "category"]).agg(pl.col("score").mean()))
    langs = sorted(means["lang"].unique().to_list())
    comps = sorted(means["composition"].unique().to_list())
    categories = [c for c in CATEGORIES if c in set(means["category"].to_list())]
    fig, axes = plt.subplots(len(langs), 1, figsize=(1.1 * len(categories) + 3, 2.6 * len(langs)), squeeze=False)
    width = 0.8 / max(1, len(comps))
    for ax, lang in zip(axes[:, 0], langs):
        part = means.filter(pl.col("lang") == lang)
        for k, comp in enumerate(comps):
            values = dict(zip(part.filter(pl.col("composition") == comp)["category"],
                              part.filter(pl.col("composition") == comp)["score"]))
            bars = ax.bar([i + k * width for i in range(len(categories))], [values.get(c, 0.0) for c in categories],
                          width=width, label=comp)
            for bar, category in zip(bars, categories):
                bar.set_gid(f"bar|{lang}|{comp}|{category}")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories, fontsize=8)
        ax.set_ylim(0, 10)
        ax.set_ylabel(f"{lang} score")
    axes[0, 0].legend(fontsize=7, ncol=max(1, len(comps)), loc="upper right")
    axes[0, 0].set_title(pooled_over(long), fontsize=8)
    return save_figure(fig, out_stem, note)


def judge_health(long: pl.DataFrame, prices: dict | None = None) -> pl.DataFrame:
    """Per cell: its judge (the rating spread per judge is ``judge_spread.judge_ratings``), judged turns, failed ones counted by their recorded ``failure`` kind (unparsable replies,
    API errors; never by error text), answers not in the question's language, the judge's tokens and
    their cost (``judge_cost`` at ``prices`` per 1k tokens; null without prices)."""
    if "score_spread" not in long.columns:  # judgments without repeated judging
        long = long.with_columns(pl.lit(None, dtype=pl.Float64).alias("score_spread"))
    long = with_judge(long)
    health = (long.group_by(["cell"])
              .agg(pl.col("judge").unique().sort().str.join(", ").alias("judge"), pl.len().alias("judged_turns"), pl.col("failed").sum().alias("failed"),
                   *[(pl.col("failure") == kind).sum().alias(column) for kind, column in FAILURE_COLUMNS.items()],
                   (~pl.col("on_language")).sum().alias("off_language_answers"),
                   pl.col("prompt_tokens").sum().alias("prompt_tokens"),
                   pl.col("completion_tokens").sum().alias("completion_tokens"),
                   pl.col("score_spread").mean().round(3).alias("mean_score_spread"),
                   pl.col("score_spread").max().alias("max_score_spread"))
              .sort("cell"))
    costs = [judge_cost(p, c, prices) for p, c in zip(health["prompt_tokens"], health["completion_tokens"])]
    return health.with_columns(pl.Series("cost", [None if x is None else round(x, 4) for x in costs],
                                         dtype=pl.Float64))
