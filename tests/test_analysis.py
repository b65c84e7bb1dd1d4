import re

import polars as pl
import pytest

from mlit.results.analysis import (bootstrap_relative_gain, judge_health, parallel_gain, plot_category_bars, plot_heatmap,
                                   plot_parallel_gain, plot_score_by_size, score_by_size, size_effect)
from mlit.judge.client import judge_cost

import numpy as np

from svg_figure import series, texts


def long_frame(rows):
    """rows: (composition, size, lang, question_id, turn, score)"""
    return pl.DataFrame([{"cell": f"m__d__{c}__{n}__seed1", "base_model": "m", "dataset": "d", "composition": c,
                          "size": n, "seed": 1, "lang": lang, "question_id": q, "category": "writing", "turn": t,
                          "score": s, "failed": s is None, "judgment": None, "prompt_tokens": 100, "on_language": q != "q2",
                          "examples_per_language": int(n) if n.isdigit() else None,
                          "completion_tokens": 10,
                          "error": None if s is not None else "no parsable rating [[1-10]] in the judge's reply",
                          "failure": None if s is not None else "unparsable"}
                         for c, n, lang, q, t, s in rows])


ROWS = [
    # DE monolingual: question means 4, 6 -> 5; ENDE parallel: 5, 7 -> 6 (DE); EN-only row for EN
    ("DE", "10", "DE", "q1", 1, 4.0), ("DE", "10", "DE", "q1", 2, 4.0),
    ("DE", "10", "DE", "q2", 1, 6.0), ("DE", "10", "DE", "q2", 2, None),  # failed turn: left out
    ("ENDE", "10", "DE", "q1", 1, 5.0), ("ENDE", "10", "DE", "q1", 2, 5.0),
    ("ENDE", "10", "DE", "q2", 1, 7.0), ("ENDE", "10", "DE", "q2", 2, 7.0),
    ("ENDE", "10", "EN", "q1", 1, 9.0),  # no EN monolingual cell: no EN comparison
    ("DE", "20", "DE", "q1", 1, 8.0),
]


def test_parallel_gain_by_hand():
    gain = parallel_gain(long_frame(ROWS), n_boot=200, seed=1)
    assert gain.height == 1
    row = gain.row(0, named=True)
    assert (row["lang"], row["composition"], row["baseline"], row["size"]) == ("DE", "ENDE", "DE", "10")
    assert row["comparison"] == "monolingual_same_language"
    assert row["mean_baseline"] == 5.0 and row["mean_multilingual"] == 6.0
    assert row["relative_gain_pct"] == pytest.approx(20.0) and row["n_questions"] == 2  # percent, as in the plot
    assert row["ci95_low_pct"] <= 20.0 <= row["ci95_high_pct"]


def test_gain_over_the_english_only_model_and_pooled_over_languages(tmp_path):
    rows = [  # EN-only model: 8 on English, 2 on German; DE-only: 6 on German; ENDE: 8 on English, 7 on German
        ("EN", "10", "EN", "q1", 1, 8.0), ("EN", "10", "EN", "q2", 1, 8.0),
        ("EN", "10", "DE", "q1", 1, 2.0), ("EN", "10", "DE", "q2", 1, 2.0),
        ("DE", "10", "DE", "q1", 1, 6.0), ("DE", "10", "DE", "q2", 1, 6.0),
        ("ENDE", "10", "EN", "q1", 1, 8.0), ("ENDE", "10", "EN", "q2", 1, 8.0),
        ("ENDE", "10", "DE", "q1", 1, 7.0), ("ENDE", "10", "DE", "q2", 1, 7.0),
    ]
    gain = parallel_gain(long_frame(rows), n_boot=200, seed=1)
    by_key = {(r["comparison"], r["lang"]): r for r in gain.iter_rows(named=True)}
    assert set(by_key) == {("monolingual_same_language", "EN"), ("monolingual_same_language", "DE"),
                           ("monolingual_same_language", "ALL"), ("english_only", "EN"), ("english_only", "DE"),
                           ("english_only", "ALL")}
    assert all(r["composition"] == "ENDE" for r in by_key.values())  # monolingual models are baselines only
    de_vs_en = by_key["english_only", "DE"]
    assert (de_vs_en["baseline"], de_vs_en["mean_baseline"], de_vs_en["relative_gain_pct"]) == ("EN", 2.0, 250.0)
    assert de_vs_en["ci95_low_pct"] == de_vs_en["ci95_high_pct"] == 250.0  # no spread over questions
    assert by_key["monolingual_same_language", "DE"]["relative_gain_pct"] == pytest.approx(100 * (7 / 6 - 1), abs=0.01)
    pooled = by_key["english_only", "ALL"]  # (8+8+7+7)/4 over (8+8+2+2)/4, over 4 (language, question) pairs
    assert pooled["relative_gain_pct"] == pytest.approx(50.0) and pooled["n_questions"] == 4
    assert pooled["baseline"] == "EN" and by_key["monolingual_same_language", "ALL"]["baseline"] == "DE+EN"
    assert pooled["ci95_low_pct"] < 50 < pooled["ci95_high_pct"]
    paths = plot_parallel_gain(gain, tmp_path / "gain")
    assert [p.suffix for p in paths] == [".png", ".svg"] and paths[0].stat().st_size > 1000
    bars = series(paths[1])  # one bar per comparison and language (ALL included), each with its gain's height
    assert set(bars) == {f"bar|{comparison}|ENDE|10|m|d|{lang}" for comparison in ("monolingual_same_language",
                         "english_only") for lang in ("EN", "DE", "ALL")}
    unit = bars["bar|english_only|ENDE|10|m|d|DE"]["height"] / 250  # +250% over the English-only model
    assert bars["bar|monolingual_same_language|ENDE|10|m|d|DE"]["height"] == pytest.approx(100 / 6 * unit, rel=2e-3)
    assert bars["bar|monolingual_same_language|ENDE|10|m|d|EN"]["height"] == 0  # 8 over 8
    assert {"over the English-only model", "over the same language's monolingual model", "ALL"} <= set(texts(paths[1]))
    # rows in key order, not in the order polars' group_by happened to yield: reruns give the same file
    assert gain.equals(gain.sort(["base_model", "dataset", "size", "comparison", "composition", "lang"]))


def test_bootstrap_interval_by_hand():
    # two pairs: resamples give ratios 5/4, 7/6 or (5+7)/(4+6); percentiles fall among those three
    low, high = bootstrap_relative_gain(np.array([5.0, 7.0]), np.array([4.0, 6.0]), n_boot=4000, seed=7)
    assert low == pytest.approx(7 / 6 - 1) and high == pytest.approx(5 / 4 - 1)
    assert bootstrap_relative_gain(np.array([5.0, 7.0]), np.array([4.0, 6.0]), 4000, 7) == (low, high)  # seeded
    same = bootstrap_relative_gain(np.array([3.0, 3.0, 3.0]), np.array([2.0, 2.0, 2.0]), 100, 0)
    assert same == pytest.approx((0.5, 0.5))


def test_score_by_size_and_plots(tmp_path):
    table = score_by_size(long_frame(ROWS))
    de = table.filter((pl.col("composition") == "DE") & (pl.col("lang") == "DE"))
    assert dict(zip(de["size"], de["mean_score"])) == {"10": 5.0, "20": 8.0}
    pooled = table.filter((pl.col("composition") == "ENDE") & (pl.col("lang") == "ALL")).row(0, named=True)
    assert (pooled["mean_score"], pooled["n_questions"]) == ((5 + 7 + 9) / 3, 3)  # DE q1, DE q2, EN q1
    paths = plot_heatmap(long_frame(ROWS), tmp_path / "heat")
    assert series(paths[1]) == {"heatmap": {"points": 1}}
    assert "mean over sizes 10, 20" in texts(paths[1])  # what the averages pool
    # question means: DE on DE (sizes pooled) 4, 6, 8; ENDE on DE 5, 7; ENDE on EN 9; EN questions of DE: none
    assert [t for t in texts(paths[1]) if re.fullmatch(r"\d+\.\d\d", t)] == ["6.00", "6.00", "9.00"]
    paths = plot_score_by_size(table, tmp_path / "size")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert {gid: s["points"] for gid, s in series(paths[1]).items() if gid.startswith("line|")} == {
        "line|DE|DE|m|d": 2, "line|DE|ENDE|m|d": 1, "line|EN|ENDE|m|d": 1, "line|ALL|DE|m|d": 2,
        "line|ALL|ENDE|m|d": 1}  # one marker per size with a score
    assert {"all languages (pooled)", "MT-Bench-X DE", "examples per language as trained", "10", "20"} \
        <= set(texts(paths[1]))


def test_score_by_size_plots_sampled_sets_as_trained_with_intervals_in_numeric_order(tmp_path):
    # EN at 40 and 160 examples per language; ENDEFRITES_sampled at 160 = 32 per language as trained
    rows = [(comp, size, "EN", q, 1, score) for comp, size, shift in (("EN", "160", 2.0), ("EN", "40", 0.0),
                                                                      ("ENDEFRITES_sampled", "160", 1.0))
            for q, score in (("q1", 3.0 + shift), ("q2", 5.0 + shift), ("q3", 4.0 + shift))]
    table = score_by_size(long_frame(rows), n_boot=500)
    en = table.filter((pl.col("composition") == "EN") & (pl.col("lang") == "EN"))
    assert en["size"].to_list() == ["40", "160"]  # numeric order, not the string order (160 < 40)
    sampled = table.filter((pl.col("composition") == "ENDEFRITES_sampled") & (pl.col("lang") == "EN")).row(0, named=True)
    assert sampled["trained_per_language"] == 32.0 and en["trained_per_language"].to_list() == [40.0, 160.0]
    assert sampled["ci95_low"] < sampled["mean_score"] == 5.0 < sampled["ci95_high"]
    figure = plot_score_by_size(table, tmp_path / "size", note="judge J: rates everything 7")[1]
    drawn = series(figure)
    sampled_x = drawn["line|EN|ENDEFRITES_sampled|m|d"]["xs"]
    en_x = drawn["line|EN|EN|m|d"]["xs"]
    assert len(sampled_x) == 1 and sampled_x[0] < en_x[0] < en_x[1]  # 32 left of 40, 40 left of 160
    spans = drawn["interval|EN|EN|m|d"]["spans"]  # an error bar per point, as long as its interval
    assert len(spans) == 2 and all(span > 0 for span in spans)
    assert {"32", "40", "160", "judge J: rates everything 7"} <= set(texts(figure))


def test_judge_health_counts_failures_and_tokens(tmp_path):
    health = judge_health(long_frame(ROWS))
    de10 = health.filter(pl.col("cell") == "m__d__DE__10__seed1").row(0, named=True)
    assert (de10["judged_turns"], de10["failed"], de10["unparsable_replies"], de10["api_errors"]) == (4, 1, 1, 0)
    assert de10["off_language_answers"] == 2
    assert de10["prompt_tokens"] == 400 and de10["completion_tokens"] == 40
    assert de10["cost"] is None  # no prices: unknown, not free
    paths = plot_category_bars(long_frame(ROWS), tmp_path / "bars")
    bars = series(paths[1])  # a fixed 0-10 axis: heights are proportional to the mean scores
    assert set(bars) == {f"bar|{lang}|{comp}|writing" for lang in ("DE", "EN") for comp in ("DE", "ENDE")}
    unit = bars["bar|EN|ENDE|writing"]["height"] / 9.0
    assert bars["bar|DE|DE|writing"]["height"] == pytest.approx(5.5 * unit, rel=1e-3)  # 4, 4, 6, 8
    assert bars["bar|DE|ENDE|writing"]["height"] == pytest.approx(6.0 * unit, rel=1e-3)
    assert bars["bar|EN|DE|writing"]["height"] == 0 and "writing" in texts(paths[1])


def test_size_effect_by_hand():
    effect = size_effect(long_frame(ROWS), n_boot=200, seed=0)
    row = effect.filter((pl.col("composition") == "DE") & (pl.col("lang") == "DE")).row(0, named=True)
    # size 20 has only q1 (8.0); paired with size 10's q1 (4.0): difference 4 on one question
    assert (row["size"], row["baseline_size"], row["difference"], row["n_questions"]) == ("20", "10", 4.0, 1)
    assert row["ci95_low"] == row["ci95_high"] == 4.0
    pooled = effect.filter((pl.col("composition") == "DE") & (pl.col("lang") == "ALL")).row(0, named=True)
    assert (pooled["difference"], pooled["n_questions"]) == (4.0, 1)  # only German questions: the same pair


def test_gain_resamples_seeds_when_there_are_several():
    rows = []
    for seed, shift in ((1, 0.0), (2, 2.0)):  # seed 2's parallel model is better by 2 points
        for q, base in (("q1", 4.0), ("q2", 6.0)):
            rows += [("DE", "10", "DE", q, 1, base, seed), ("ENDE", "10", "DE", q, 1, base + 1 + shift, seed)]
    frame = long_frame([r[:6] for r in rows]).with_columns(pl.Series("seed", [r[6] for r in rows]))
    row = parallel_gain(frame, n_boot=2000, seed=3).row(0, named=True)
    assert row["n_seeds"] == 2 and row["n_questions"] == 2
    assert row["relative_gain_pct"] == pytest.approx(40.0)  # means 7 vs 5
    # resampling seeds: the interval reaches both the all-seed-1 (6/5) and all-seed-2 (8/5) gains
    assert row["ci95_low_pct"] < 25 and row["ci95_high_pct"] > 55


def test_cost_from_prices():
    prices = {"prompt_per_1k": 0.03, "completion_per_1k": 0.06}
    health = judge_health(long_frame(ROWS), prices)
    de10 = health.filter(pl.col("cell") == "m__d__DE__10__seed1").row(0, named=True)
    assert de10["cost"] == pytest.approx((400 * 0.03 + 40 * 0.06) / 1000)
    assert de10["cost"] == round(judge_cost(400, 40, prices), 4)  # the judge's own cost function


def test_judge_cost_is_one_function_for_estimate_spend_and_tables():
    prices = {"prompt_per_1k": 0.03, "completion_per_1k": 0.06}
    assert judge_cost(1000, 500, prices) == pytest.approx(0.03 + 0.03)
    assert judge_cost(0, 0, prices) == 0.0
    assert judge_cost(2000, 1000, {"prompt_per_1k": 0.01}) == pytest.approx(0.02)  # a price left out is free
    assert judge_cost(1000, 500, None) is None and judge_cost(1000, 500, {}) is None  # no prices: unknown


def test_judge_health_counts_the_failure_kind_not_the_error_text():
    rows = [("DE", "10", "DE", "q1", 1, None), ("DE", "10", "DE", "q1", 2, None), ("DE", "10", "DE", "q2", 1, None),
            ("DE", "10", "DE", "q2", 2, 5.0)]
    frame = long_frame(rows).with_columns(  # every error text says "no parsable rating"
        pl.Series("failure", ["api_error", "unparsable", "api_error", None]))
    health = judge_health(frame).row(0, named=True)
    assert (health["failed"], health["unparsable_replies"], health["api_errors"]) == (3, 1, 2)


def test_size_effect_compares_across_datasets_by_examples():
    rows = [("EN", "full", "EN", "q1", 1, 5.0), ("EN", "1030", "EN", "q1", 1, 6.0), ("EN", "full", "EN", "q1", 1, 9.0)]
    frame = long_frame(rows).with_columns(
        pl.Series("dataset", ["lima_x", "bactrian_x", "bactrian_x"]),
        pl.Series("examples_per_language", [1030, 1030, 67017], dtype=pl.Int64))
    effect = size_effect(frame, n_boot=50)
    points = {(r["dataset"], r["size"]): r for r in effect.iter_rows(named=True)}
    # the smallest set is a tie at 1030 examples: Bactrian-X's 1030 subset sorts before Lima-X 'full'
    assert set(points) == {("lima_x", "full"), ("bactrian_x", "full")}
    assert points["bactrian_x", "full"]["baseline_dataset"] == "bactrian_x"
    assert points["bactrian_x", "full"]["difference"] == 3.0 and points["lima_x", "full"]["difference"] == -1.0
