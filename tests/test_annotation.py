import json

import polars as pl
import pytest

from mlit.annotation.sheets import SheetError, export_sheets, human_judge_agreement, import_ratings
from mlit.files import read_jsonl, write_jsonl
from mlit.data.mtbench import load_questions

from conftest import BENCH
from svg_figure import series, texts


def answers(tmp_path, model):
    path = tmp_path / f"{model}.jsonl"
    write_jsonl(path, [{"question_id": q["question_id"], "answer_id": "x", "model_id": model,
                        "choices": [{"index": 0, "turns": [f"{model} says one", f"{model} says two"]}], "tstamp": 0}
                       for q in load_questions(BENCH, "DE", per_category=1)])
    return str(path)


def test_sheets_are_blind_shuffled_and_reproducible(tmp_path):
    files = {"DE": [answers(tmp_path, "cell-alpha"), answers(tmp_path, "cell-beta")]}
    assert export_sheets(files, str(BENCH), tmp_path / "a", per_language=10, seed=3) == {"DE": 10}
    export_sheets(files, str(BENCH), tmp_path / "b", per_language=10, seed=3)
    sheet = (tmp_path / "a" / "sheet_DE.csv").read_text()
    assert sheet == (tmp_path / "b" / "sheet_DE.csv").read_text()
    assert "cell-alpha" not in sheet.replace("cell-alpha says", "") and "model" not in sheet.splitlines()[0]
    assert sheet.splitlines()[0].endswith("annotator,rating")  # annotators fill these two columns
    items = read_jsonl(tmp_path / "a" / "sheet_DE.jsonl")
    key = json.loads((tmp_path / "a" / "key_DE.json").read_text())
    assert set(key) == {item["item_id"] for item in items}
    assert {v["model"] for v in key.values()} == {"cell-alpha", "cell-beta"}
    export_sheets(files, str(BENCH), tmp_path / "c", per_language=10, seed=4)
    assert (tmp_path / "c" / "sheet_DE.csv").read_text() != sheet


KEY = {"i1": {"model": "m", "question_id": "81_DE", "turn": 1}, "i2": {"model": "m", "question_id": "82_DE", "turn": 1},
       "i3": {"model": "m", "question_id": "83_DE", "turn": 2}}


def write_sheet(tmp_path, lines):
    path = tmp_path / "filled.csv"
    path.write_text("item_id,annotator,rating\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, message", [
    ("i9,ann1,5", r"filled.csv:3: item_id 'i9' is not in the sheet's key"),
    ("i2,ann1,11", r"filled.csv:3: rating '11' is not a whole number from 1 to 10"),
    ("i2,ann1,seven", r"filled.csv:3: rating 'seven'"),
    ("i2,,4", r"filled.csv:3: annotator is empty"),
])
def test_bad_rows_are_named(tmp_path, line, message):
    with pytest.raises(SheetError, match=message):
        import_ratings(write_sheet(tmp_path, ["i1,ann1,5", line]), KEY)


def test_agreement_with_the_judge_and_between_annotators(tmp_path):
    human = import_ratings(write_sheet(tmp_path, ["i1,ann1,8", "i2,ann1,3", "i3,ann1,6",
                                                  "i1,ann2,8", "i2,ann2,3", "i3,ann2,6"]), KEY)
    judge = pl.DataFrame({"model": ["m"] * 3, "question_id": ["81_DE", "82_DE", "83_DE"], "turn": [1, 1, 2],
                          "score": [8.0, 4.0, 6.0]})
    result = human_judge_agreement(human, judge)
    assert result["n"] == 3 and result["exact"] == pytest.approx(2 / 3) and result["within_one"] == 1.0
    assert result["spearman"] == pytest.approx(1.0)
    assert result["krippendorff_alpha_humans"] == pytest.approx(1.0)
    constant = human_judge_agreement(human, judge.with_columns(pl.lit(5.0).alias("score")))
    assert constant["pearson"] is None  # undefined (a constant judge), reported as null, not NaN


def test_pairwise_sheets_verdicts_and_agreement(tmp_path):
    import csv

    from mlit.annotation.sheets import export_pairwise_sheets, import_verdicts, pairwise_judge_agreement

    files = {"DE": [answers(tmp_path, "cell-alpha"), answers(tmp_path, "cell-beta")]}
    assert export_pairwise_sheets(files, str(BENCH), tmp_path / "p", per_language=6, seed=1) == {"DE": 6}
    key = json.loads((tmp_path / "p" / "pairwise_key_DE.json").read_text())
    items = list(csv.DictReader(open(tmp_path / "p" / "pairwise_sheet_DE.csv")))
    assert all("cell-" not in ",".join(item.keys()) for item in items) and len(items) == 6
    # the judge prefers alpha everywhere; the human agrees, except one tie
    judge = pl.DataFrame([{"model": m, "question_id": k["question_id"], "turn": k["turn"], "score": s}
                          for k in key.values() for m, s in (("cell-alpha", 8.0), ("cell-beta", 3.0))]).unique()
    lines = []
    for index, (item_id, k) in enumerate(key.items()):
        winner = "A" if k["model_a"] == "cell-alpha" else "B"
        lines.append(f"{item_id},ann1,{'tie' if index == 0 else winner}")
    sheet = tmp_path / "filled_ab.csv"
    sheet.write_text("item_id,annotator,verdict\n" + "\n".join(lines) + "\n")
    verdicts = import_verdicts(sheet, key)
    result = pairwise_judge_agreement(verdicts, judge)
    assert result == {"n": 6, "agreement_with_ties": pytest.approx(5 / 6), "agreement_without_ties": 1.0}
    sheet.write_text("item_id,annotator,verdict\n" + lines[0].rsplit(",", 1)[0] + ",C\n")
    with pytest.raises(SheetError, match=r"filled_ab.csv:2: verdict 'C' is not one of \['A', 'B', 'tie'\]"):
        import_verdicts(sheet, key)


def test_cli_exports_sheets_and_reports_agreement_with_a_plot(tmp_path):
    import csv
    import subprocess
    import sys

    alpha = answers(tmp_path, "m__d__EN__10__seed1")
    beta = answers(tmp_path, "m__d__DE__10__seed1")
    run = [sys.executable, "-m", "mlit"]
    subprocess.run(run + ["annotation-export", "--answers", f"DE={alpha}", f"DE={beta}", "--bench", str(BENCH),
                          "--per-language", "8", "--seed", "2", "--out-dir", str(tmp_path / "ann")],
                   check=True, capture_output=True)
    key = json.loads((tmp_path / "ann" / "key_DE.json").read_text())
    judged = [{"question_id": k["question_id"], "model": k["model"], "turn": k["turn"], "score": 5.0 + i % 3,
               "lang": "DE", "category": "writing"} for i, k in enumerate(key.values())]
    write_jsonl(tmp_path / "judged.jsonl", judged)
    with open(tmp_path / "filled.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "annotator", "rating"])
        for (item_id, _), row in zip(key.items(), judged):
            writer.writerow([item_id, "ann1", int(row["score"])])
    done = subprocess.run(run + ["annotation-agreement", "--lang", "DE", "--sheets", str(tmp_path / "filled.csv"),
                                 "--key", str(tmp_path / "ann" / "key_DE.json"), "--judgments",
                                 str(tmp_path / "judged.jsonl"), "--out", str(tmp_path / "agree" / "DE.json")],
                          check=True, capture_output=True, text=True)
    result = json.loads((tmp_path / "agree" / "DE.json").read_text())
    assert result["ratings"]["n"] == 8 and result["ratings"]["exact"] == 1.0, done.stdout
    assert result["ratings"]["quadratic_weighted_kappa"] == pytest.approx(1.0)
    assert (tmp_path / "agree" / "DE.png").stat().st_size > 1000 and (tmp_path / "agree" / "DE.csv").exists()
    assert series(tmp_path / "agree" / "DE.svg") == {"items": {"points": 8}}  # one dot per rated item
    assert {"judge score", "human rating (mean over annotators)"} <= set(texts(tmp_path / "agree" / "DE.svg"))
