import json
import subprocess
import sys

import polars as pl
import pytest

from mlit.files import DataFileError, write_jsonl
from mlit.data.mtbench import load_questions
from mlit.results.tables import load_long, validate_judgments, write_tables

from conftest import BENCH

CELL = "m__d__EN__10__seed1"  # a judgment file is <cell>/<LANG>.jsonl, as the workflow writes it
CELLS = {
    "m__d__EN__10__seed1": {"cell": "m__d__EN__10__seed1", "base_model": "m", "dataset": "d", "composition": "EN",
                            "size": "10", "seed": 1},
}


def judgment(qid, lang, category, turn, score):
    return {"question_id": qid, "model": "m__d__EN__10__seed1", "judge": ["gpt-4", "single-v1"],
            "user_prompt": "...", "judgment": None if score is None else f"Rating: [[{score}]]", "score": score,
            "turn": turn, "category": category, "lang": lang, "prompt_name": "single-v1",
            "error": None if score is not None else "no parsable rating [[1-10]] in the judge's reply",
            "failure": None if score is not None else "unparsable"}


def fixture_files(tmp_path):
    en = tmp_path / CELL / "EN.jsonl"
    de = tmp_path / CELL / "DE.jsonl"
    write_jsonl(en, [judgment("1", "EN", "writing", 1, 8), judgment("1", "EN", "writing", 2, 6),
                     judgment("2", "EN", "math", 1, 3), judgment("2", "EN", "math", 2, None)])
    write_jsonl(de, [judgment("1", "DE", "writing", 1, 5), judgment("1", "DE", "writing", 2, 4)])
    return [str(en), str(de)]


def test_means_exclude_failures_and_count_them(tmp_path):
    tables = write_tables(fixture_files(tmp_path), CELLS, tmp_path / "tables")
    main = tables["main_table"].row(0, named=True)
    assert main["EN"] == round((8 + 6 + 3) / 3, 3)  # the failed judgment is not a zero
    assert main["DE"] == 4.5
    assert main["average"] == round((8 + 6 + 3 + 5 + 4) / 5, 3) and main["n_failed"] == 1
    detail = tables["scores_by_cell_lang_category_turn"]
    math2 = detail.filter((pl.col("lang") == "EN") & (pl.col("category") == "math") & (pl.col("turn") == 2)).row(
        0, named=True)
    assert math2["mean_score"] is None and math2["n_scored"] == 0 and math2["n_failed"] == 1
    by_turn = tables["scores_by_cell_lang_turn"].filter(pl.col("lang") == "EN")
    assert dict(zip(by_turn["turn"], by_turn["mean_score"])) == {"1": 5.5, "2": 6.0, "all": round(17 / 3, 3)}
    assert tables["judge_failures"].select("question_id", "turn", "failure").rows() == [("2", 2, "unparsable")]
    for name in ("main_table.md", "main_table.csv", "scores_long.parquet", "README.md"):
        assert (tmp_path / "tables" / name).exists()
    assert pl.read_parquet(tmp_path / "tables" / "scores_long.parquet").height == 6


def test_every_table_and_plot_names_its_judge_and_its_spread(tmp_path):
    write_tables(fixture_files(tmp_path), CELLS, tmp_path / "tables")
    out = tmp_path / "tables"
    for name in ("main_table", "parallel_gain", "score_by_size", "judge_health", "on_language_rate"):
        assert (out / f"{name}.md").read_text().startswith(
            "What these scores measure: judge gpt-4 (ratings 8: 1, 6: 1, 5: 1, 4: 1, 3: 1 over 5 rated turns)"), name
    ratings = pl.read_csv(out / "judge_ratings.csv").row(0, named=True)
    assert (ratings["judge"], ratings["rated"], ratings["failed"], ratings["distinct_ratings"]) == ("gpt-4", 5, 1, 5)
    assert pl.read_csv(out / "judge_health.csv")["judge"].to_list() == ["gpt-4"]
    rate = pl.read_csv(out / "on_language_rate.csv").row(0, named=True)
    assert (rate["EN"], rate["DE"], rate["all"]) == (100.0, 100.0, 100.0)  # rows without the field: on-language
    assert "## on_language_rate" in (out / "README.md").read_text()
    from svg_figure import texts

    for plot in ("score_by_size", "composition_x_language", "categories", "parallel_gain"):  # every plot, always
        assert "judge gpt-4: ratings 8: 1, 6: 1, 5: 1, 4: 1, 3: 1" in texts(out / "plots" / f"{plot}.svg"), plot


def test_partial_results_say_what_is_missing(tmp_path):
    files = fixture_files(tmp_path) + [str(tmp_path / CELL / "FR.jsonl")]
    long, missing = load_long(files, CELLS)
    assert missing == [str(tmp_path / CELL / "FR.jsonl")] and long.height == 6
    with pytest.raises(DataFileError, match=r"FR.jsonl: missing"):  # the tables rule: every file is expected
        write_tables(files, CELLS, tmp_path / "tables")
    write_tables(files, CELLS, tmp_path / "tables", partial=True)
    assert "Partial results" in (tmp_path / "tables" / "README.md").read_text()


def test_cli_builds_partial_tables_from_cell_ids_with_latex(tmp_path):
    (tmp_path / CELL).mkdir()
    (tmp_path / CELL / "EN.jsonl").write_text("".join(json.dumps(row) + "\n" for row in complete_rows("EN")))
    files = [str(tmp_path / CELL / "EN.jsonl"), str(tmp_path / CELL / "IT.jsonl")]
    tables = [sys.executable, "-m", "mlit", "tables", "--judgments", *files, "--questions-per-category", "1",
              "--out-dir", str(tmp_path / "t")]
    refused = subprocess.run(tables, capture_output=True, text=True)
    assert refused.returncode != 0 and f"{tmp_path / CELL / 'IT.jsonl'}: missing" in refused.stderr
    subprocess.run(tables + ["--partial"], check=True, capture_output=True)
    main = pl.read_parquet(tmp_path / "t" / "main_table.parquet").row(0, named=True)
    assert (main["base_model"], main["composition"], main["size"], main["seed"]) == ("m", "EN", "10", 1)
    tex = (tmp_path / "t" / "main_table.tex").read_text()
    assert tex.startswith("% What these scores measure: judge gpt-4")  # the judge, as a LaTeX comment
    tex = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert tex.startswith("\\begin{tabular}") and "m\\_\\_d\\_\\_EN" in tex and tex.rstrip().endswith("\\end{tabular}")
    assert "IT.jsonl" in (tmp_path / "t" / "README.md").read_text()


def test_training_health_from_train_info_skips_older_models(tmp_path, capsys):
    import json

    report = {"DE": {"examples": 10, "truncated_examples": 2, "answer_tokens": 500, "answer_tokens_lost": 50,
                     "answer_tokens_lost_fraction": 0.1},
              "EN": {"examples": 10, "truncated_examples": 0, "answer_tokens": 400, "answer_tokens_lost": 0,
                     "answer_tokens_lost_fraction": 0.0}}
    new, old = tmp_path / "models" / "m__d__EN__10__seed1", tmp_path / "models" / "m__d__DE__10__seed1"
    for directory, info in ((new, {"steps": 3, "truncation": report}), (old, {"steps": 3})):
        directory.mkdir(parents=True)
        (directory / "train_info.json").write_text(json.dumps(info))
    files = [str(old / "train_info.json"), str(new / "train_info.json")]

    tables = write_tables(fixture_files(tmp_path), CELLS, tmp_path / "tables", train_info_files=files)
    printed = capsys.readouterr().out
    assert f"{old / 'train_info.json'} has no truncation report" in printed  # skipped, with a note
    health = pl.read_parquet(tmp_path / "tables" / "training_health.parquet")
    assert health.columns == ["cell", "lang", "examples", "truncated_examples", "answer_tokens", "answer_tokens_lost",
                              "answer_tokens_lost_fraction"]
    assert health.rows(named=True) == [{"cell": new.name, "lang": lang, **stats} for lang, stats in report.items()]
    assert tables["training_health"].equals(health)
    assert pl.read_csv(tmp_path / "tables" / "training_health.csv").height == 2
    assert "| m__d__EN__10__seed1 | DE | 10 | 2 | 500 | 50 | 0.1 |" in (tmp_path / "tables" / "training_health.md").read_text()

    plain = write_tables(fixture_files(tmp_path), CELLS, tmp_path / "plain")  # without train-info: no table
    assert "training_health" not in plain and not (tmp_path / "plain" / "training_health.csv").exists()


# Checks against what the config expects: generation.questions_per_category 1 -> 8 questions x 2 turns.
def complete_rows(lang, score=7):
    """A judgment file as mlit.judge.step writes it (one row per question and turn, also with judge.samples > 1)."""
    return [judgment(q["question_id"], lang, q["category"], turn, score)
            for q in load_questions(BENCH, lang, 1) for turn in (1, 2)]


def write_lines(path, rows):
    """Rows as JSON lines, as they are (a string score stays a string)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def checked_tables(files, out, partial=False):
    return write_tables(files, CELLS, out, bench_dir=BENCH, questions_per_category=1, partial=partial)


def probe(rows):
    """The probes of the issue "silent garbage in the tables": (rows, line, problem)."""
    cut = rows[:6]
    big, text, lang, twice = ([dict(r) for r in rows] for _ in range(4))
    big[3]["score"] = 420
    text[4]["score"] = "7"
    lang[5]["lang"] = "DE"
    twice[7] = dict(twice[6])
    flag = [dict(r) for r in rows]
    flag[2]["score"] = True
    other = [dict(r) for r in rows]  # a row of another cell's judgments, in this cell's file
    other[7]["model"] = "m__d__DE__10__seed1"
    zero, eleven = ([dict(r) for r in rows] for _ in range(2))
    zero[8]["score"] = 0
    eleven[9]["score"] = 11
    unknown = [dict(r) for r in rows]
    unknown[9]["question_id"] = "999_EN"
    null = [dict(r) for r in rows]
    null[1]["error"] = None
    null[1]["score"] = None
    old = [dict(r) for r in rows]  # a failure written before rows recorded its kind
    old[2].update(score=None, error="no parsable rating [[1-10]] in the judge's reply")
    del old[2]["failure"]
    kindless = [dict(r) for r in rows]
    kindless[3].update(score=None, error="APIError: boom", failure=None)
    scored = [dict(r) for r in rows]
    scored[4]["failure"] = "api_error"
    odd = [dict(r) for r in rows]
    odd[5].update(score=None, error="timeout", failure="timeout")
    second = rows[6]["question_id"]
    return {
        "cut": (cut, None, rf"EN.jsonl: 10 of the 16 expected rows missing \(6 rows, last line 6\).*: "
                           rf"{rows[6]['question_id']} turns 1 and 2"),
        "score 420": (big, 4, r"score 420 is outside 1-10"),
        "score '7'": (text, 5, r'score "7" is a JSON string, not a number'),
        "score true": (flag, 3, r"score true is a JSON boolean, not a number"),
        "wrong lang": (lang, 6, r"lang 'DE' differs from the file's language EN"),
        "other cell": (other, 8, r'model "m__d__DE__10__seed1" differs from the file\'s cell m__d__EN__10__seed1'),
        "score 0": (zero, 9, r"score 0 is outside 1-10"),
        "score 11": (eleven, 10, r"score 11 is outside 1-10"),
        "duplicate": (twice, 8, rf"question_id '{second}' turn 1 is judged twice \(first on line 7\)"),
        "unknown id": (unknown, 10, r"question_id '999_EN' is not one of the 8 expected EN questions"),
        "null without error": (null, 2, r"score null without an error"),
        "null without failure field": (old, 3, r"score null without a failure kind .*re-run the judge step"),
        "null with failure null": (kindless, 4, r"score null with failure null"),
        "score with a failure": (scored, 5, r'score 7 with failure "api_error": a failed judgment has score null'),
        "unknown failure kind": (odd, 6, r'failure "timeout" is not null or one of "unparsable", "api_error"'),
    }


@pytest.mark.parametrize("name", ["cut", "score 420", "score '7'", "score true", "wrong lang", "other cell",
                                  "score 0", "score 11", "duplicate",
                                  "unknown id", "null without error", "null without failure field",
                                  "null with failure null", "score with a failure", "unknown failure kind"])
def test_an_invalid_judgment_file_stops_the_tables_naming_file_and_row(tmp_path, name):
    rows, line, problem = probe(complete_rows("EN"))[name]
    en = write_lines(tmp_path / CELL / "EN.jsonl", rows)
    de = write_lines(tmp_path / CELL / "DE.jsonl", complete_rows("DE"))
    where = f"{en}: " if line is None else f"{en}:{line}: "
    with pytest.raises(DataFileError, match=problem) as error:
        checked_tables([en, de], tmp_path / "tables")
    assert where in str(error.value)
    assert not (tmp_path / "tables").exists()  # no table, no average over garbage
    if name != "cut":  # an invalid row is an error in partial tables too
        with pytest.raises(DataFileError, match=problem):
            checked_tables([en, de], tmp_path / "partial", partial=True)


def test_the_cli_stops_on_a_bad_score_naming_file_and_row(tmp_path):
    rows = complete_rows("EN")
    rows[3]["score"] = 420
    en = write_lines(tmp_path / CELL / "EN.jsonl", rows)
    result = subprocess.run([sys.executable, "-m", "mlit", "tables", "--judgments", en, "--bench", str(BENCH),
                             "--questions-per-category", "1", "--out-dir", str(tmp_path / "t")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and f"{en}:4: score 420 is outside 1-10" in result.stderr
    assert not (tmp_path / "t" / "main_table.csv").exists()


def test_a_complete_file_with_a_recorded_judge_failure_is_accepted_and_counted(tmp_path):
    rows = complete_rows("EN", score=6)
    rows[0].update(score=None, judgment=None, error="RateLimitError: status 429 after 3 retries", failure="api_error")
    rows[1]["score"] = 9.5  # a median of samples may be a half point
    en = write_lines(tmp_path / CELL / "EN.jsonl", rows)
    assert validate_judgments([en], BENCH, 1) == {"files": [], "rows": []}
    main = checked_tables([en], tmp_path / "tables")["main_table"].row(0, named=True)
    assert main["n_failed"] == 1 and main["EN"] == round((9.5 + 6 * 14) / 15, 3)


def test_failure_kinds_are_read_from_the_field_never_from_the_error_text(tmp_path):
    rows = complete_rows("EN", score=6)
    # the texts say the opposite of the kinds: the kind counts, the text is for people
    rows[0].update(score=None, judgment=None, failure="api_error",
                   error="no parsable rating [[1-10]] in the judge's reply")
    rows[1].update(score=None, judgment="I refuse.", failure="unparsable", error="APIError: status 500")
    rows[2].update(score=None, judgment=None, failure="api_error", error="InternalServerError: 500")
    tables = checked_tables([write_lines(tmp_path / CELL / "EN.jsonl", rows)], tmp_path / "tables")
    health = tables["judge_health"].row(0, named=True)
    assert (health["failed"], health["unparsable_replies"], health["api_errors"]) == (3, 1, 2)
    failures = tables["judge_failures"]
    assert failures["failure"].to_list().count("api_error") == 2 and failures.height == 3
    assert pl.read_csv(tmp_path / "tables" / "judge_failures.csv")["failure"].sort().to_list() == \
        ["api_error", "api_error", "unparsable"]
    long = pl.read_parquet(tmp_path / "tables" / "scores_long.parquet")
    assert long.filter(pl.col("failed"))["failure"].null_count() == 0
    assert long.filter(~pl.col("failed"))["failure"].null_count() == long.height - 3


def test_load_long_refuses_a_failure_without_its_kind(tmp_path):
    rows = complete_rows("EN")
    rows[2].update(score=None, error="no parsable rating [[1-10]] in the judge's reply")
    del rows[2]["failure"]
    with pytest.raises(DataFileError, match=r"EN.jsonl:3: score null with failure null .*re-run the judge step"):
        load_long([write_lines(tmp_path / CELL / "EN.jsonl", rows)], CELLS)
    del rows[2]  # a scored row without the field (an older file) reads as no failure
    for row in rows:
        row.pop("failure")
    long, _ = load_long([write_lines(tmp_path / CELL / "EN.jsonl", rows)], CELLS)
    assert long["failure"].null_count() == long.height and not long["failed"].any()


def test_samples_still_give_one_row_per_question_and_turn(tmp_path):
    rows = [{**row, "samples": 3, "sample_scores": [4.0, 9.0, 5.0], "score": 5.0, "score_spread": 5.0}
            for row in complete_rows("EN")]
    checked_tables([write_lines(tmp_path / CELL / "EN.jsonl", rows)], tmp_path / "tables")
    with pytest.raises(DataFileError, match="judged twice"):
        checked_tables([write_lines(tmp_path / CELL / "EN.jsonl", rows + rows)], tmp_path / "twice")


def test_partial_tables_list_missing_files_and_question_ids(tmp_path):
    rows = complete_rows("EN")
    cut = [row for row in rows if not (row["question_id"] == rows[4]["question_id"]
                                       or (row["question_id"] == rows[10]["question_id"] and row["turn"] == 2))]
    en = write_lines(tmp_path / CELL / "EN.jsonl", cut)
    fr = str(tmp_path / CELL / "FR.jsonl")
    tables = checked_tables([en, fr], tmp_path / "tables", partial=True)
    assert tables["main_table"]["EN"].to_list() == [7.0]
    readme = (tmp_path / "tables" / "README.md").read_text()
    assert "**Partial results**: 1 judgment file(s) missing, 3 judgment row(s) missing from 1 file(s)." in readme
    assert f"- {CELL}, FR: {fr} (all 8 questions)" in readme
    assert (f"- m__d__EN__10__seed1, EN: {rows[4]['question_id']} (turns 1, 2), {rows[10]['question_id']} (turn 2)"
            f" — {en}") in readme
    assert json.loads((tmp_path / "tables" / "missing.json").read_text()) == [fr]
    with pytest.raises(DataFileError, match=rf"{rows[4]['question_id']} turns 1 and 2, "
                                            rf"{rows[10]['question_id']} turn 2"):
        checked_tables([en], tmp_path / "strict")


def test_scores_1_and_10_are_the_bounds_of_the_scale(tmp_path):
    rows = complete_rows("EN", score=1)
    rows[0]["score"] = 10
    main = checked_tables([write_lines(tmp_path / CELL / "EN.jsonl", rows)], tmp_path / "tables")["main_table"]
    assert main["EN"].to_list() == [round((10 + 15) / 16, 3)]


def test_a_file_of_another_cell_or_listed_twice_stops_the_tables(tmp_path):
    """The probe of the issue: DE-cell judgments in the EN cell's file made one cell vanish from the
    main table and the other count double. A file's rows belong to the cell of its directory."""
    other = "m__d__DE__10__seed1"
    en = write_lines(tmp_path / CELL / "EN.jsonl", complete_rows("EN"))
    moved = write_lines(tmp_path / other / "EN.jsonl", complete_rows("EN"))  # rows naming m__d__EN__10__seed1
    with pytest.raises(DataFileError) as error:
        checked_tables([en, moved], tmp_path / "tables")
    assert f"{moved}:1: model \"{CELL}\" differs from the file's cell {other}" in str(error.value)
    assert "16 problem(s)" in str(error.value) and not (tmp_path / "tables").exists()
    with pytest.raises(DataFileError, match="listed twice"):
        checked_tables([en, en], tmp_path / "tables")
