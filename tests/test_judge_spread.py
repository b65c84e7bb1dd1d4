"""What the scores measure: the judge's rating spread (a constant judge is flagged) and the on-language rate."""

import polars as pl

from mlit.results.judge_spread import judge_caption, judge_ratings, on_language_rate, short_caption


def frame(rows):
    """rows: (composition, lang, question, score, judgment, on_language, judge)"""
    return pl.DataFrame([{"cell": f"m__d__{c}__10__seed1", "base_model": "m", "dataset": "d", "composition": c,
                          "size": "10", "seed": 1, "lang": lang, "question_id": q, "turn": 1, "score": s,
                          "judgment": j, "on_language": on, "failed": s is None, "judge": judge}
                         for c, lang, q, s, j, on, judge in rows])


def demo_like(judge="mlit-demo-judge@ab12"):
    """The demo judge: 7 for every answer it rates; off-language answers set to 1 without asking it."""
    return [("EN", "EN", "q1", 7.0, "ok [[7]]", True, judge), ("EN", "EN", "q2", 7.0, "[[7]]", True, judge),
            ("EN", "DE", "q1", 1.0, None, False, judge), ("EN", "DE", "q2", 1.0, None, False, judge),
            ("ENDE", "DE", "q1", 7.0, "[[7]]", True, judge), ("ENDE", "DE", "q2", None, "no rating", True, judge)]


def test_a_constant_judge_is_flagged_and_named_with_its_spread():
    ratings = judge_ratings(frame(demo_like()))
    row = ratings.row(0, named=True)
    assert (row["judge"], row["rated"], row["set_by_rule"], row["failed"]) == ("mlit-demo-judge@ab12", 3, 2, 1)
    assert row["rating_7"] == 3 and row["rating_1"] == 0 and row["distinct_ratings"] == 1  # rule-set 1s are not ratings
    assert "constant judge" in row["warning"] and "got 7" in row["warning"] and "on-language rate" in row["warning"]
    caption = judge_caption(ratings)
    assert caption.startswith("judge mlit-demo-judge@ab12 (ratings 7: 3 over 3 rated turns; 2 scores set to 1")
    assert "WARNING: constant judge" in caption
    assert short_caption(ratings) == ("judge mlit-demo-judge@ab12: rates everything 7; off-language 1: "
                                      "scores = on-language rate")


def test_a_judge_with_spread_gets_no_warning_and_each_judge_its_row():
    rows = demo_like("judge-a") + [("DE", "DE", "q1", 3.0, "[[3]]", True, "judge-b"),
                                   ("DE", "DE", "q2", 8.0, "[[8]]", True, "judge-b")]
    ratings = {r["judge"]: r for r in judge_ratings(frame(rows)).iter_rows(named=True)}
    assert ratings["judge-b"]["warning"] is None and ratings["judge-b"]["distinct_ratings"] == 2
    assert (ratings["judge-b"]["rating_3"], ratings["judge-b"]["rating_8"], ratings["judge-b"]["mean_rating"]) == (1, 1, 5.5)
    assert ratings["judge-a"]["warning"] is not None
    constant_without_rule = judge_ratings(frame([r for r in rows if r[4] is not None and r[6] == "judge-a"]))
    assert short_caption(constant_without_rule) == "judge judge-a: rates everything 7: the scores do not tell answers apart"


def test_judgments_without_a_judge_name_are_counted_under_unknown():
    ratings = judge_ratings(frame(demo_like()).drop("judge"))
    assert ratings["judge"].to_list() == ["unknown judge"]


def test_on_language_rate_per_cell_and_language_in_percent():
    rate = on_language_rate(frame(demo_like()))
    by_comp = {r["composition"]: r for r in rate.iter_rows(named=True)}
    assert (by_comp["EN"]["EN"], by_comp["EN"]["DE"], by_comp["EN"]["all"]) == (100.0, 0.0, 50.0)
    assert by_comp["ENDE"]["DE"] == 100.0 and by_comp["ENDE"]["EN"] is None
    assert rate.columns[-3:] == ["DE", "EN", "all"]
