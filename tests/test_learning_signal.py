"""The pipeline learns: on a small grid trained for real (the demo's model, data, judge and checks,
nothing keyed on cell names), the English-only model answers the German and French questions in
another language far more often than the parallel ENDEFRITES model, and scores lower there.

The test must fail when training is broken. Its negative controls, run by hand:

    MLIT_TEST_BREAK_TRAINING=lr0 pytest tests/test_learning_signal.py              # learning rate 1e-12 (the schema rejects 0)
    MLIT_TEST_BREAK_TRAINING=shuffled_labels pytest tests/test_learning_signal.py  # answers shuffled across examples

(``shuffled_labels`` gives every training question the answer of a random other example, of any
language: the model can still learn to write sentences, but not to answer in the question's language.)
"""

from __future__ import annotations

import polars as pl
import pytest

from conftest import DEMO_GRID_LANGS

pytestmark = pytest.mark.slow

NON_ENGLISH = [lang for lang in DEMO_GRID_LANGS if lang != "EN"]


@pytest.fixture(scope="module")
def judged(demo_grid) -> pl.DataFrame:
    workdir, _ = demo_grid  # conftest.demo_grid_config: EN and ENDEFRITES at 160, the negative controls too
    return pl.read_parquet(workdir / "results" / "tables" / "scores_long.parquet")


def per_composition(judged: pl.DataFrame) -> dict[str, dict]:
    """Off-language rate and mean score on the non-English questions, per composition."""
    rows = judged.filter(pl.col("lang").is_in(NON_ENGLISH)).group_by("composition").agg(
        (~pl.col("on_language")).mean().alias("off_language_rate"), pl.col("score").mean().alias("mean_score"),
        pl.len().alias("turns"))
    return {row["composition"]: row for row in rows.iter_rows(named=True)}


def test_the_english_only_model_answers_other_languages_off_language(judged):
    stats = per_composition(judged)
    english_only, parallel = stats["EN"], stats["ENDEFRITES"]
    assert english_only["turns"] == parallel["turns"] == 2 * 16 * len(NON_ENGLISH)
    # the parallel model follows the question's language on most answers; the English-only one on few
    assert parallel["off_language_rate"] <= 0.5, stats
    assert english_only["off_language_rate"] >= parallel["off_language_rate"] + 0.3, stats


def test_the_english_only_model_scores_lower_outside_english(judged):
    stats = per_composition(judged)
    assert stats["EN"]["mean_score"] < stats["ENDEFRITES"]["mean_score"] - 1.0, stats
