"""Several judges: agreement of two judges, the sign / interval check of the study's comparisons,
the stratified sample and the cost of judging a grid with two judges."""

import math

import numpy as np
import polars as pl
import pytest

from mlit.annotation import agreement as items
from mlit.judges.agreement import (RatingsError, agreement_table, joint_table, markdown, ratings_frame,
                                   table_statistics)


def ratings(scores, cells=("c1",), langs=("EN",), categories=("writing", "math"), shift=0.0):
    """Rows keyed by (cell, lang, question, turn) with the given scores in order."""
    rows, index = [], 0
    for cell in cells:
        for lang in langs:
            for question in range(len(scores) // (2 * len(cells) * len(langs))):
                for turn in (1, 2):
                    rows.append({"cell": cell, "lang": lang, "question_id": f"q{question}", "turn": turn,
                                 "category": categories[question % len(categories)],
                                 "score": None if scores[index] is None else scores[index] + shift})
                    index += 1
    return ratings_frame(rows, "test")


def test_statistics_equal_a_hand_computation():
    a, b = [1, 2, 3, 4], [2, 2, 4, 3]
    stats = table_statistics(*joint_table(a, b))
    # by hand: differences 1, 0, 1, -1 -> mean 0.25; exact 1/4; within one 4/4
    assert stats["mean_difference"] == pytest.approx(0.25)
    assert stats["exact"] == pytest.approx(0.25) and stats["within_one"] == pytest.approx(1.0)
    # Pearson: a - 2.5 = (-1.5, -.5, .5, 1.5), b - 2.75 = (-.75, -.75, 1.25, .25); sum of products 2.5,
    # sums of squares 5 and 2.75 -> 2.5 / sqrt(13.75)
    assert stats["pearson"] == pytest.approx(2.5 / math.sqrt(13.75))
    # Kendall: pairs (12) tied in b only, (13) C, (14) C, (23) C, (24) C, (34) D -> (4 - 1) / sqrt(5 * 6)
    assert stats["kendall_tau_b"] == pytest.approx(3 / math.sqrt(30))
    # Spearman: b's ranks 1.5, 1.5, 4, 3 (deviations -1, -1, 1.5, .5) against 1..4 -> 3.5 / sqrt(5 * 4.5)
    assert stats["spearman"] == pytest.approx(3.5 / math.sqrt(22.5))
    # quadratic kappa: observed sum of squared differences 3 over the expected sum(outer(rows, cols) / n * d^2)
    expected = sum((x - y) ** 2 for x in a for y in b) / 4
    assert stats["quadratic_weighted_kappa"] == pytest.approx(1 - 3 / expected)
    # Krippendorff's interval alpha: D_o = 3 / 4, D_e = 2 * S / 7 with S the pooled squared deviations
    pooled = np.array(a + b, float)
    assert stats["krippendorff_alpha"] == pytest.approx(1 - 0.75 / (2 * ((pooled - pooled.mean()) ** 2).sum() / 7))


def test_table_statistics_equal_the_item_wise_functions_of_the_human_study():
    rng = np.random.default_rng(3)
    a = rng.integers(1, 11, 200)
    b = np.clip(a + rng.integers(-2, 3, 200), 1, 10)
    stats = table_statistics(*joint_table(a, b))
    assert stats["pearson"] == pytest.approx(items.pearson(a, b))
    assert stats["spearman"] == pytest.approx(items.spearman(a, b))
    assert stats["kendall_tau_b"] == pytest.approx(items.kendall_tau_b(a, b))
    assert stats["quadratic_weighted_kappa"] == pytest.approx(items.quadratic_weighted_kappa(list(a), list(b)))
    assert stats["krippendorff_alpha"] == pytest.approx(items.krippendorff_alpha(np.array([a, b])))
    assert stats["exact"] == pytest.approx(items.exact_agreement(a, b))
    assert stats["within_one"] == pytest.approx(items.within_one_agreement(a, b))
    # medians of repeated judgments (halves) are ratings too
    halves = np.where(rng.random(200) < 0.3, b - 0.5, b).clip(1, 10)
    assert table_statistics(*joint_table(a, halves))["kendall_tau_b"] == pytest.approx(items.kendall_tau_b(a, halves))


SCORES = [8, 2, 7, 1, 9, 9, 5, 6, 3, 4, 8, 7, 6, 5, 2, 3]


def test_identical_scores_agree_perfectly_in_every_group():
    table = agreement_table(ratings(SCORES), ratings(SCORES), n_boot=200)
    assert set(table["by"]) == {"all", "lang", "category", "turn"}
    assert table.filter(pl.col("by") == "all")["n"].item() == len(SCORES)
    for name in ("pearson", "spearman", "kendall_tau_b", "quadratic_weighted_kappa", "krippendorff_alpha",
                 "exact", "within_one"):
        assert table[name].to_list() == pytest.approx([1.0] * table.height), name
    assert table["mean_difference"].to_list() == pytest.approx([0.0] * table.height)
    assert table["mean_difference_low"].to_list() == pytest.approx([0.0] * table.height)


def test_a_judge_that_adds_one_shows_mean_difference_one_and_exact_agreement_zero():
    table = agreement_table(ratings(SCORES), ratings(SCORES, shift=1), n_boot=200)
    assert table["mean_difference"].to_list() == pytest.approx([1.0] * table.height)
    assert table["exact"].to_list() == pytest.approx([0.0] * table.height)
    assert table["within_one"].to_list() == pytest.approx([1.0] * table.height)
    assert table["pearson"].to_list() == pytest.approx([1.0] * table.height)  # a shift keeps the order
    assert (table["quadratic_weighted_kappa"] < 1).all() and (table["krippendorff_alpha"] < 1).all()


def test_only_the_overlap_is_compared_and_failures_are_counted_not_scored():
    reference = ratings(SCORES)
    candidate = ratings([None, *SCORES[1:]])  # the first item failed with the candidate judge
    sample = candidate.filter(pl.col("question_id").is_in(["q0", "q1", "q2"]))  # a sample of the items
    table = agreement_table(reference, sample, n_boot=0).filter(pl.col("by") == "all").row(0, named=True)
    assert (table["n"], table["failed_a"], table["failed_b"]) == (5, 0, 11)
    assert table["exact"] == 1.0 and math.isnan(table["exact_low"])  # no resamples asked


def test_bootstrap_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(0)
    a = list(rng.integers(1, 11, 40).astype(float))
    b = [min(10.0, x + float(rng.integers(0, 3))) for x in a]
    first = agreement_table(ratings(a), ratings(b), n_boot=150, seed=5)
    assert first.equals(agreement_table(ratings(a), ratings(b), n_boot=150, seed=5))
    assert not first.equals(agreement_table(ratings(a), ratings(b), n_boot=150, seed=6))
    overall = first.filter(pl.col("by") == "all").row(0, named=True)
    for name in ("pearson", "mean_difference", "krippendorff_alpha"):
        assert overall[f"{name}_low"] <= overall[name] <= overall[f"{name}_high"], name
    assert "| all | all | 40 |" in markdown(first)


def test_a_key_rated_twice_is_an_error_naming_it():
    row = {"cell": "c", "lang": "DE", "question_id": "81", "turn": 1, "category": "writing", "score": 5.0}
    with pytest.raises(RatingsError, match="question_id=81.*rated 2 times"):
        ratings_frame([row, row], "judge_b.jsonl")


def test_judge_agreement_cli_reads_judgment_files_and_writes_csv_and_markdown(tmp_path):
    from mlit.cli import main
    from mlit.files import write_jsonl

    def judgment_file(path, shift, failed=()):
        rows = [{"model": "cellA", "lang": "DE", "question_id": f"{q}", "turn": t, "category": "stem",
                 "score": None if (q, t) in failed else float(min(10, q % 7 + 1 + shift)),
                 "failure": "api_error" if (q, t) in failed else None} for q in range(10) for t in (1, 2)]
        write_jsonl(path, rows)
        return str(path)

    a = judgment_file(tmp_path / "a" / "DE.jsonl", 0)
    b = judgment_file(tmp_path / "b" / "DE.jsonl", 1, failed={(3, 2)})
    assert main(["judge-agreement", "--a", a, "--b", b, "--name-a", "gpt-4", "--name-b", "open",
                 "--n-boot", "50", "--out", str(tmp_path / "agreement")]) == 0
    table = pl.read_csv(tmp_path / "agreement.csv")
    overall = table.filter(pl.col("by") == "all").row(0, named=True)
    assert (overall["n"], overall["failed_b"], overall["exact"]) == (19, 1, 0.0)
    assert overall["mean_difference"] == pytest.approx(1.0)
    assert "open (B) with gpt-4 (A)" in (tmp_path / "agreement.md").read_text()


# --- re-judging a reference file -------------------------------------------------------------------------

from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "data" / "mt_bench_x"
SHIPPED_EN = REPO / "data" / "mt_bench_x_judgments" / "EN" / "gpt-4_single.jsonl"


def scripted_judge(shift: int = 0, refuse: tuple = ()):
    """A behaviour of the scripted server that rates each shipped prompt with the file's score + ``shift``
    and refuses (400, not retried) the first request of prompts whose question id is in ``refuse``."""
    from mlit.files import read_jsonl

    by_prompt = {row["user_prompt"]: row for row in read_jsonl(SHIPPED_EN)}

    def behaviour(request, attempt):
        row = by_prompt[request["messages"][-1]["content"]]
        if row["question_id"] in refuse and attempt == 0:
            return ("status", 400, {})
        return ("reply", f"The assistant's answer is as judged before. Rating: [[{row['score'] + shift}]]")

    return behaviour


def overall(table):
    return table.filter(pl.col("by") == "all").row(0, named=True)


@pytest.mark.slow  # serves (the scripted OpenAI-protocol server)
def test_rejudging_the_shipped_file_with_its_own_scores_agrees_perfectly_and_resumes(tmp_path):
    from mlit.files import read_jsonl
    from support.scripted_server import OpenAIServer
    from mlit.judges.rejudge import rejudge

    cache, out = tmp_path / "cache", tmp_path / "out"
    with OpenAIServer(scripted_judge(refuse=("87_EN",))) as server:
        judge = {"model": "candidate", "base_url": server.base_url, "max_retries": 0, "parallel": 4}
        # a first run loses two requests (a killed or failed run): they are recorded, never scored
        first = overall(rejudge(SHIPPED_EN, judge, cache, out, BENCH, n_boot=100))
        assert (first["n"], first["failed_b"], first["exact"]) == (10, 2, 1.0)
        assert len(server.requests) == 12
        # the rerun sends only what failed, and reproduces every score of the file
        table = rejudge(SHIPPED_EN, judge, cache, out, BENCH, n_boot=100)
        assert len(server.requests) == 14
        rows = read_jsonl(out / "judgments.jsonl")
        assert [r["score"] for r in rows] == [float(r["score"]) for r in read_jsonl(SHIPPED_EN)]
        # a third run pays nothing
        rejudge(SHIPPED_EN, judge, cache, out, BENCH, n_boot=100)
        assert len(server.requests) == 14
    result = overall(table)
    assert (result["n"], result["failed_a"], result["failed_b"]) == (12, 0, 0)
    for name in ("pearson", "spearman", "kendall_tau_b", "quadratic_weighted_kappa", "krippendorff_alpha", "exact",
                 "within_one"):
        assert result[name] == pytest.approx(1.0), name
    assert result["mean_difference"] == 0 and result["judge_a"] == "gpt-4 (gpt-4_single.jsonl)"
    assert table.filter(pl.col("by") == "category")["group"].to_list() == ["writing"]  # 81-90 are all writing
    assert table.filter(pl.col("by") == "turn")["n"].to_list() == [6, 6]
    assert (out / "agreement.csv").exists() and "| all | all | 12 |" in (out / "agreement.md").read_text()


@pytest.mark.slow  # serves (the scripted OpenAI-protocol server)
def test_rejudging_with_a_judge_that_adds_one_shows_plus_one_through_the_cli(tmp_path):
    import json

    from mlit.cli import main
    from support.scripted_server import OpenAIServer

    with OpenAIServer(scripted_judge(shift=1)) as server:
        judge = {"model": "plus-one", "base_url": server.base_url, "max_retries": 0}
        assert main(["rejudge", str(SHIPPED_EN), "--judge", json.dumps(judge), "--cache", str(tmp_path / "cache"),
                     "--n-boot", "100", "--out-dir", str(tmp_path / "out")]) == 0
    result = overall(pl.read_csv(tmp_path / "out" / "agreement.csv"))
    # the file's one 10 becomes 11, no rating on 1..10: a failure of judge B, not a score
    assert (result["n"], result["failed_b"]) == (11, 1)
    assert result["mean_difference"] == pytest.approx(1.0) and result["exact"] == 0.0
    assert result["within_one"] == 1.0 and result["pearson"] == pytest.approx(1.0)


# --- the study's comparisons under two judges ------------------------------------------------------------

def study_frame(score_of, questions=range(12)):
    """A long judgment frame of one base model and dataset: compositions DE and ENDE at sizes 10 and 20, rated
    in DE; ``score_of(composition, size, question, turn)`` gives each score (None: failed)."""
    rows = []
    for composition in ("DE", "ENDE"):
        for size in ("10", "20"):
            for q in questions:
                for turn in (1, 2):
                    score = score_of(composition, size, q, turn)
                    rows.append({"cell": f"m__d__{composition}__{size}__seed1", "base_model": "m", "dataset": "d",
                                 "composition": composition, "size": size, "seed": 1, "examples_per_language": int(size),
                                 "lang": "DE", "question_id": f"q{q}", "category": "writing", "turn": turn,
                                 "score": score, "failed": score is None})
    return pl.DataFrame(rows)


def study_scores(composition, size, q, turn):
    """The parallel model is 1.5 better than the monolingual one, the larger set 1 better than the smaller."""
    return 4.0 + (1.5 if composition == "ENDE" else 0) + (1 if size == "20" else 0) + (q % 3) * 0.5 + (turn - 1) * 0.5


def test_comparisons_keep_their_sign_under_a_shifted_judge_and_flip_under_a_reversed_one():
    from mlit.judges.comparisons import comparison_check, summary

    reference = study_frame(study_scores)
    lenient = study_frame(lambda c, s, q, t: min(10.0, study_scores(c, s, q, t) + 1))
    check = comparison_check(reference, lenient, n_boot=200)
    assert set(check["analysis"]) == {"parallel_gain", "size_effect"}
    gains = check.filter(pl.col("analysis") == "parallel_gain")
    assert gains.height == 2  # ENDE over DE, at sizes 10 and 20 (the English-only baseline has no DE rows)
    assert check["same_sign"].all() and check["same_verdict"].all() and set(check["verdict_a"]) == {"higher"}
    # the size effect is a difference: a judge that adds 1 everywhere gives the same one, intervals overlap
    sizes = check.filter(pl.col("analysis") == "size_effect")
    assert sizes["estimate_a"].to_list() == pytest.approx(sizes["estimate_b"].to_list())
    assert sizes["intervals_overlap"].all()
    # the gain is relative: the same 1.5 points over a higher baseline is a smaller gain, and these noise-free
    # scores give intervals so narrow that they do not overlap although the verdict is the same
    assert (gains["estimate_b"] < gains["estimate_a"]).all() and not gains["intervals_overlap"].any()
    assert comparison_check(reference, reference, n_boot=200)["intervals_overlap"].all()
    # a judge that prefers the monolingual model reverses the parallel gain and only that
    reversed_judge = study_frame(lambda c, s, q, t: study_scores("ENDE" if c == "DE" else "DE", s, q, t))
    flipped = comparison_check(reference, reversed_judge, n_boot=200)
    by_analysis = {row["analysis"]: row for row in summary(flipped).iter_rows(named=True)}
    assert by_analysis["parallel_gain"]["same_sign"] == 0 and by_analysis["parallel_gain"]["intervals_overlap"] == 0
    # per composition (DE, ENDE) and language (DE, and ALL pooled): 4, all kept
    assert by_analysis["size_effect"]["same_verdict"] == by_analysis["size_effect"]["comparisons"] == 4
    assert set(flipped.filter(pl.col("analysis") == "parallel_gain")["verdict_b"]) == {"lower"}


def test_a_sampled_judge_is_compared_on_its_sample_only():
    from mlit.judges.comparisons import comparison_check

    # judge A rates questions 0-5 of the study's way and 6-11 the other way round; judge B rated only 0-5
    reference = study_frame(lambda c, s, q, t: study_scores(c if q < 6 else ("ENDE" if c == "DE" else "DE"), s, q, t))
    sampled = study_frame(study_scores, questions=range(6))
    on_sample = comparison_check(reference, sampled, n_boot=100).filter(pl.col("analysis") == "parallel_gain")
    assert on_sample["same_sign"].all() and on_sample["estimate_a"].to_list() == on_sample["estimate_b"].to_list()
    everything = comparison_check(reference, sampled, n_boot=100, overlap_only=False)
    assert not everything.filter(pl.col("analysis") == "parallel_gain")["same_sign"].any()


# --- the stratified sample and the cost of two judges ---------------------------------------------------

def grid_like_items(cells=("c1", "c2"), langs=("EN", "DE"), per_category=10):
    return pl.DataFrame([{"cell": cell, "lang": lang, "question_id": f"{category}{q}_{lang}", "turn": turn,
                          "category": category}
                         for cell in cells for lang in langs for category in ("writing", "math", "coding")
                         for q in range(per_category) for turn in (1, 2)])


def test_stratified_sample_is_deterministic_by_seed_and_covers_every_stratum():
    from mlit.judges.sample import STRATA, per_stratum, stratified_sample

    items = grid_like_items()
    sample = stratified_sample(items, 0.1, seed=7)
    strata = items.select(STRATA).unique()
    assert sample.select(STRATA).unique().sort(STRATA).equals(strata.sort(STRATA))  # every stratum
    assert sample.height == strata.height == items.height // 10  # strata of 10: one item each
    # the same seed gives the same sample, whatever the order of the items; another seed another one
    shuffled = items.sample(fraction=1.0, shuffle=True, seed=3)
    assert stratified_sample(shuffled, 0.1, seed=7).equals(sample)
    assert not stratified_sample(items, 0.1, seed=8).equals(sample)
    # adding a cell leaves the others' sample as it was
    more = stratified_sample(grid_like_items(cells=("c1", "c2", "c3")), 0.1, seed=7)
    assert more.filter(pl.col("cell") != "c3").equals(sample)
    # small strata still get one item; a share rounds half up
    assert [per_stratum(n, 0.1) for n in (0, 1, 3, 10, 14, 15, 100)] == [0, 1, 1, 1, 1, 2, 10]
    assert stratified_sample(grid_like_items(per_category=3), 0.1).height == 2 * 2 * 3 * 2
    with pytest.raises(ValueError, match="not in"):
        stratified_sample(items, 0.0)


def test_two_judge_cost_of_the_paper_grid_matches_the_plan_and_the_sample(tmp_path):
    import yaml

    from mlit.config import Grid
    from mlit.judges.cost import two_judge_cost
    from mlit.plan.grid import judge_rows, questions_per_lang

    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    grid = Grid(config, repo_root=REPO, dry_run=True)
    prices = {"prompt_per_1k": 0.0002, "completion_per_1k": 0.0004}
    table = {row["plan"].split(" on ")[0] + " " + row["plan"].split(" ")[-1]: row for row in
             two_judge_cost(grid, 0.1, 0, {"model": "open", "prices_per_1k": prices}).iter_rows(named=True)}
    everything, sample = table["dear judge everything"], table["dear judge sample"]
    second, both = table["second judge everything"], table["sample + second judge everything"]
    plan = judge_rows(grid, questions_per_lang(grid), tmp_path)  # the plan's judge rows (snakemake plan)
    assert everything["requests"] == sum(row["requests"] for row in plan) == 72 * 5 * 80 * 2
    assert everything["dollars"] == pytest.approx(sum(row["dollars"] for row in plan), rel=1e-5)
    # every (cell, language, category, turn) stratum has 10 questions: exactly one in the 10% sample
    assert sample["requests"] == 72 * 5 * 8 * 2 and sample["share"] == 0.1
    assert 0.09 < sample["dollars"] / everything["dollars"] < 0.11
    assert second["dollars"] == pytest.approx((second["prompt_tokens"] * 0.0002 + second["completion_tokens"] * 0.0004)
                                              / 1000, rel=1e-6)
    assert both["dollars"] == pytest.approx(sample["dollars"] + second["dollars"])
    unpriced = two_judge_cost(grid, 0.1, 0, {"model": "open"}).row(3, named=True)
    assert unpriced["dollars"] is None and unpriced["requests"] == sample["requests"] + everything["requests"]
    from mlit.cli import main

    assert main(["judge-sample-cost", "--configfile", str(REPO / "config" / "paper.yaml"), "--out",
                 str(tmp_path / "cost")]) == 0
    written = pl.read_csv(tmp_path / "cost.csv")
    assert written["dollars"][0] == pytest.approx(everything["dollars"]) and written["dollars"][2] is None
    assert "10% sample stratified by cell, language, category and turn" in (tmp_path / "cost.md").read_text()


def test_rejudging_reads_mlit_judgment_files_and_resends_only_what_the_judge_replied_to(tmp_path):
    from mlit.files import read_jsonl, write_jsonl
    from mlit.judges.rejudge import read_reference, reference_ratings, to_send

    shipped = read_jsonl(SHIPPED_EN)
    rows = [{**row, "model": "cellA", "lang": "EN", "failure": None} for row in shipped]
    rows[0].update(score=None, judgment=None, failure="api_error")  # a failed request
    rows[1].update(score=1.0, judgment=None)  # an off-language answer rated 1 by the rule, never sent
    write_jsonl(tmp_path / "EN.jsonl", rows)
    reference = read_reference(tmp_path / "EN.jsonl", BENCH)
    assert reference_ratings(reference, "x")["score"].null_count() == 1
    sent = to_send(reference)
    assert len(sent) == 10 and {(r["question_id"], r["turn"]) for r in sent}.isdisjoint(
        {(rows[0]["question_id"], rows[0]["turn"]), (rows[1]["question_id"], rows[1]["turn"])})
    # a sample: one per (model, language, category, turn) stratum here (one category, two turns)
    sample = to_send(reference, 0.1, seed=1)
    assert sorted(r["turn"] for r in sample) == [1, 2] and sample == to_send(reference, 0.1, seed=1)
    write_jsonl(tmp_path / "bad.jsonl", [{**rows[2], "score": 11}])
    from mlit.judges.rejudge import ReferenceFileError

    with pytest.raises(ReferenceFileError, match=r"bad.jsonl:1: score 11 is not a rating"):
        read_reference(tmp_path / "bad.jsonl", BENCH)


def test_main_table_cells_under_two_judges_show_the_difference_and_a_reordering():
    from mlit.judges.comparisons import main_table_check

    study = study_frame(study_scores)
    reversed_judge = study_frame(lambda c, s, q, t: study_scores("ENDE" if c == "DE" else "DE", s, q, t))
    table = main_table_check(study, reversed_judge)
    assert table.height == 4 * 2  # four cells, DE and the average
    row = table.filter((pl.col("composition") == "ENDE") & (pl.col("size") == "20") & (pl.col("lang") == "DE"))
    # by hand: 4 + 1.5 + 1 + mean over q of (q % 3) * .5 (0.5) + mean over turns (0.25) = 7.25; reversed: -1.5
    assert row.row(0, named=True)["mean_a"] == pytest.approx(7.25)
    assert row.row(0, named=True)["difference"] == pytest.approx(-1.5)
    # the best cell under A (7.25) is third under B: DE/20 7.25, DE/10 6.25, ENDE/20 5.75, ENDE/10 4.75
    assert (row["rank_a"].item(), row["rank_b"].item()) == (1, 3)
    assert (table["n_a"] == table["n_b"]).all()


def test_judge_comparisons_cli_reads_judgment_files(tmp_path):
    from mlit.cli import main
    from mlit.files import write_jsonl

    def write(judge: str, shift: float) -> list[str]:
        paths = []
        for composition in ("DE", "ENDE"):
            cell = f"m__d__{composition}__10__seed1"
            rows = [{"model": cell, "lang": "DE", "question_id": f"q{q}", "turn": turn, "category": "writing",
                     "score": study_scores(composition, "10", q, turn) + shift, "failure": None}
                    for q in range(8) for turn in (1, 2)]
            write_jsonl(tmp_path / judge / cell / "DE.jsonl", rows)
            paths.append(str(tmp_path / judge / cell / "DE.jsonl"))
        return paths

    assert main(["judge-comparisons", "--a", *write("a", 0), "--b", *write("b", 0.5), "--n-boot", "50",
                 "--out", str(tmp_path / "out" / "check")]) == 0
    check = pl.read_csv(tmp_path / "out" / "check.csv")
    assert check["analysis"].to_list() == ["parallel_gain"] and check["same_sign"].all()
    cells = pl.read_csv(tmp_path / "out" / "check_main_table.csv")
    assert cells["difference"].to_list() == pytest.approx([0.5] * 4)  # two cells: DE and the average


# --- further judges in the workflow (config `judges`) ----------------------------------------------------

def test_a_further_judges_share_of_a_cell_is_the_sample_of_the_same_strata():
    """The judge step's draw (mlit.judge.step.shared_turns, per cell and language) picks the turns that
    mlit.judges.sample draws from the table of all turns: the cost estimate and the judge agree."""
    from mlit.judge.prompts import JudgeRequest
    from mlit.judge.step import shared_turns
    from mlit.judges.sample import stratified_sample

    items = grid_like_items(cells=("c1", "c2"), langs=("EN", "DE"), per_category=5)
    expected = stratified_sample(items, 0.25, seed=3)
    drawn = []
    for (cell, lang), part in items.group_by(["cell", "lang"]):
        pairs = [({"model_id": cell}, JudgeRequest(question_id=row["question_id"], turn=row["turn"],
                                                    category=row["category"], prompt_name="single-v1",
                                                    system_prompt="", user_prompt=""))
                 for row in part.iter_rows(named=True)]
        drawn += [{"cell": a["model_id"], "lang": lang, "question_id": r.question_id, "turn": r.turn,
                   "category": r.category} for a, r in shared_turns(pairs, lang, 0.25, 3)]
    got = pl.DataFrame(drawn).select(expected.columns).sort(["cell", "lang", "question_id", "turn"])
    assert got.equals(expected)
    assert got.height == 2 * 2 * 3 * 2  # one of five questions in each (cell, lang, category, turn) stratum


def test_judges_report_leaves_out_only_turns_the_rule_scored_for_both(tmp_path):
    """Agreement of a further judge: a turn the off-language rule scored for both judges is left out (no judge
    rated it); one the rule scored for the main judge only is compared with the other judge's own rating."""
    from mlit.cli import main
    from mlit.files import write_jsonl

    def rows(rule_for, own_score):
        out = []
        for q in range(6):
            for t in (1, 2):
                ruled = q in rule_for
                out.append({"model": "m__d__DE__10__seed1", "lang": "DE", "question_id": f"q{q}", "turn": t, "category": "stem",
                            "score": 1.0 if ruled else own_score, "failure": None, "on_language": q >= 4,
                            "judgment": None if ruled else f"Bewertung: [[{own_score:g}]]"})
        return out

    write_jsonl(tmp_path / "main" / "DE.jsonl", rows(rule_for={0, 1, 2, 3}, own_score=7.0))  # the rule on q0-q3
    write_jsonl(tmp_path / "other" / "DE.jsonl", rows(rule_for={0, 1}, own_score=7.0))  # ... q0, q1 only
    assert main(["judges-report", "--a", str(tmp_path / "main" / "DE.jsonl"), "--b", str(tmp_path / "other" /
                 "DE.jsonl"), "--name-a", "main", "--name-b", "other", "--n-boot", "20",
                 "--out-dir", str(tmp_path / "out")]) == 0
    table = pl.read_csv(tmp_path / "out" / "agreement_with_main.csv")
    overall = table.filter(pl.col("by") == "all").row(0, named=True)
    # q0, q1 left out (both by the rule): 4 x 2 turns; on q2, q3 main's 1 meets other's 7
    assert overall["n"] == 8
    assert overall["mean_difference"] == pytest.approx(6 * 4 / 8) and overall["exact"] == pytest.approx(0.5)
    for name in ("agreement_with_main.md", "comparisons_with_main.csv", "comparisons_with_main.md",
                 "main_table_with_main.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
