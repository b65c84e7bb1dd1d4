import polars as pl

from mlit.io import write_jsonl
from mlit.tables import load_long, write_tables

CELLS = {
    "m__d__EN__10__seed1": {"cell": "m__d__EN__10__seed1", "base_model": "m", "dataset": "d", "composition": "EN",
                            "size": "10", "seed": 1},
}


def judgment(qid, lang, category, turn, score):
    return {"question_id": qid, "model": "m__d__EN__10__seed1", "judge": ["gpt-4", "single-v1"],
            "user_prompt": "...", "judgment": None if score is None else f"Rating: [[{score}]]", "score": score,
            "turn": turn, "category": category, "lang": lang, "prompt_name": "single-v1",
            "error": None if score is not None else "no parsable rating [[1-10]] in the judge's reply"}


def fixture_files(tmp_path):
    en = tmp_path / "EN.jsonl"
    de = tmp_path / "DE.jsonl"
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
    assert len(tables["judge_failures"]) == 1
    for name in ("main_table.md", "main_table.csv", "scores_long.parquet", "README.md"):
        assert (tmp_path / "tables" / name).exists()
    assert pl.read_parquet(tmp_path / "tables" / "scores_long.parquet").height == 6


def test_partial_results_say_what_is_missing(tmp_path):
    files = fixture_files(tmp_path) + [str(tmp_path / "FR.jsonl")]
    long, missing = load_long(files, CELLS)
    assert missing == [str(tmp_path / "FR.jsonl")] and long.height == 6
    write_tables(files, CELLS, tmp_path / "tables")
    assert "Partial results" in (tmp_path / "tables" / "README.md").read_text()


def test_cli_builds_partial_tables_from_cell_ids_with_latex(tmp_path):
    import subprocess
    import sys

    files = fixture_files(tmp_path) + [str(tmp_path / "IT.jsonl")]
    subprocess.run([sys.executable, "-m", "mlit", "tables", "--judgments", *files, "--out-dir", str(tmp_path / "t")],
                   check=True, capture_output=True)
    main = pl.read_parquet(tmp_path / "t" / "main_table.parquet").row(0, named=True)
    assert (main["base_model"], main["composition"], main["size"], main["seed"]) == ("m", "EN", "10", 1)
    tex = (tmp_path / "t" / "main_table.tex").read_text()
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
