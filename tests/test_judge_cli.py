import csv
import json
import subprocess
import sys

from mlit.files import read_jsonl, write_jsonl
from mlit.judge.prompts import build_requests
from mlit.data.mtbench import load_judge_prompts, load_questions, load_references

from conftest import BENCH


def mlit(*args):
    return subprocess.run([sys.executable, "-m", "mlit", *args], capture_output=True, text=True, check=True)


def test_dry_run_writes_the_exact_requests_and_sends_nothing(tmp_path):
    questions = load_questions(BENCH, "ES", per_category=1)
    answers = [{"question_id": q["question_id"], "answer_id": "a", "model_id": "m",
                "choices": [{"index": 0, "turns": [f"uno {q['question_id']}", "dos"]}], "tstamp": 0} for q in questions]
    write_jsonl(tmp_path / "answers.jsonl", answers)
    # no --judge, no endpoint: a dry run needs neither
    mlit("judge", "--dry-run", "--answers", str(tmp_path / "answers.jsonl"), "--lang", "ES",
         "--out", str(tmp_path / "requests.jsonl"))
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert len(rows) == 2 * len(questions)
    assert set(rows[0]) == {"question_id", "turn", "prompt_name", "system_prompt", "user_prompt"}
    prompts, refs = load_judge_prompts(BENCH, "ES"), load_references(BENCH, "ES")
    expected = [r for q, a in zip(questions, answers)
                for r in build_requests(q, a, prompts, refs.get(q["question_id"]))]
    assert [(r["question_id"], r["turn"], r["user_prompt"]) for r in rows] == \
        [(e.question_id, e.turn, e.user_prompt) for e in expected]


def test_import_judgments_matches_fastchat_means_and_counts_failures(tmp_path):
    judgments = [("a", 1, 8), ("a", 1, 6), ("a", 2, 4), ("a", 2, -1), ("b", 1, 10), ("b", 2, -1)]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps({"question_id": i, "model": m, "judge": ["gpt-4", "single-v1"],
                                        "user_prompt": "...", "judgment": "...", "score": s, "turn": t}) + "\n"
                            for i, (m, t, s) in enumerate(judgments)))
    mlit("import-judgments", str(path), "--out", str(tmp_path / "out"))
    with open(tmp_path / "out" / "scores.csv") as handle:
        table = {(r["model"], r["turn"]): r for r in csv.DictReader(handle)}
    assert float(table["a", "1"]["mean_score"]) == 7.0 and table["a", "1"]["failed"] == "0"
    assert float(table["a", "2"]["mean_score"]) == 4.0 and table["a", "2"]["failed"] == "1"  # -1 is not averaged
    assert float(table["a", "all"]["mean_score"]) == 6.0 and table["a", "all"]["n"] == "3"
    assert float(table["b", "all"]["mean_score"]) == 10.0 and table["b", "all"]["failed"] == "1"


def test_import_judgments_reads_mlit_rows_failure_kind_not_text(tmp_path):
    rows = [{"model": "a", "turn": 1, "score": 8.0, "failure": None, "error": None},
            {"model": "a", "turn": 1, "score": None, "failure": "api_error",
             "error": "no parsable rating [[1-10]] in the judge's reply"},
            {"model": "a", "turn": 2, "score": None, "failure": "unparsable", "error": "status 500"},
            {"model": "a", "turn": 2, "score": 4.0, "failure": None, "error": "no parsable rating"}]
    write_jsonl(tmp_path / "EN.jsonl", rows)
    mlit("import-judgments", str(tmp_path / "EN.jsonl"), "--out", str(tmp_path / "out"))
    with open(tmp_path / "out" / "scores.csv") as handle:
        table = {(r["model"], r["turn"]): r for r in csv.DictReader(handle)}
    assert float(table["a", "1"]["mean_score"]) == 8.0 and table["a", "1"]["failed"] == "1"
    assert float(table["a", "2"]["mean_score"]) == 4.0 and table["a", "2"]["failed"] == "1"
    assert table["a", "all"]["n"] == "2" and table["a", "all"]["failed"] == "2"
    write_jsonl(tmp_path / "bad.jsonl", [{"model": "a", "turn": 1, "score": None, "failure": "timeout", "error": "x"}])
    refused = subprocess.run([sys.executable, "-m", "mlit", "import-judgments", str(tmp_path / "bad.jsonl"),
                              "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert refused.returncode != 0 and "failure 'timeout' is not null or one of" in refused.stderr
