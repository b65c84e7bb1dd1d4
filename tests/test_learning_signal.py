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

import copy
import json
import os
import random

import polars as pl
import pytest
import yaml

from conftest import DEMO_DATA, LANGS, REPO, snakemake

pytestmark = pytest.mark.workflow

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
BREAK = os.environ.get("MLIT_TEST_BREAK_TRAINING")  # None, "lr0" or "shuffled_labels" (negative controls)
NON_ENGLISH = ["DE", "FR"]


def shuffled_label_data(out_dir) -> str:
    """The demo data with every answer moved to a random other example (across all languages)."""
    rows = {lang: [json.loads(line) for line in open(DEMO_DATA.format(lang=lang), encoding="utf-8")] for lang in LANGS}
    outputs = [row["output"] for lang in LANGS for row in rows[lang]]
    random.Random(0).shuffle(outputs)
    for lang in LANGS:
        with open(out_dir / f"instructions_{lang}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows[lang]:
                handle.write(json.dumps({**row, "output": outputs.pop()}, ensure_ascii=False) + "\n")
    return str(out_dir / "instructions_{lang}.jsonl")


def signal_config(workdir) -> dict:
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN", "ENDEFRITES"], sizes=[160], eval_languages=["EN"] + NON_ENGLISH)
    config["generation"].update(questions_per_category=2)
    config["judge"]["off_language"] = "score_1"
    if BREAK == "lr0":
        config["training"]["learning_rate"] = 1e-12  # the schema rejects 0 (exclusiveMinimum): as good as 0
    elif BREAK == "shuffled_labels":
        config["datasets"]["demo"]["local"] = shuffled_label_data(workdir)
    elif BREAK is not None:
        raise ValueError(f"MLIT_TEST_BREAK_TRAINING={BREAK!r}: expected lr0 or shuffled_labels")
    return config


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> pl.DataFrame:
    workdir = tmp_path_factory.mktemp("learning_signal")
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(signal_config(workdir)))
    snakemake(workdir, "--cores", "2", configfile=configfile)
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
