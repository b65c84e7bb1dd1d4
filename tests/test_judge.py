import json

import pytest

from mlit.io import read_jsonl, write_jsonl
from mlit.judge import judge_cell, requests_for
from mlit.judge_prompts import build_requests, parse_rating, prompt_name
from mlit.mtbench import load_judge_prompts, load_questions, load_references

from conftest import BENCH, LANGS
from openai_server import OpenAIServer

PLANTED_KEY = "sk-test-PLANTED-do-not-leak-0123456789"


@pytest.mark.parametrize("lang", LANGS)
def test_rating_parser_reads_each_languages_own_example(lang):
    template = load_judge_prompts(BENCH, lang)["single-v1"]["prompt_template"]
    example = template.split('"')[-2]  # e.g. 'Bewertung: [[5]]', the format the prompt asks for
    assert parse_rating(f"Kurz erklärt. {example}") == 5.0


def test_rating_parser_follows_mt_bench():
    assert parse_rating("explanation ... Rating: [[8.5]]") == 8.5
    assert parse_rating("no double brackets, Rating: [6]") == 6.0  # MT-Bench's backup pattern
    assert parse_rating("first [[3]] then [[9]]") == 3.0
    assert parse_rating("I cannot rate this.") is None
    assert parse_rating("Rating: [[0]]") is None and parse_rating("Rating: [[11]]") is None


def answer_row(question, turns=("first answer", "second answer")):
    return {"question_id": question["question_id"], "answer_id": "x", "model_id": "m",
            "choices": [{"index": 0, "turns": list(turns)}], "tstamp": 0}


def test_requests_are_mt_bench_x_prompts_of_the_language():
    prompts, refs = load_judge_prompts(BENCH, "DE"), load_references(BENCH, "DE")
    questions = {q["category"]: q for q in load_questions(BENCH, "DE")}
    writing, math = questions["writing"], questions["math"]
    turn1, turn2 = build_requests(writing, answer_row(writing), prompts, None)
    assert (turn1.prompt_name, turn2.prompt_name) == ("single-v1", "single-v1-multi-turn")
    assert turn1.system_prompt == prompts["single-v1"]["system_prompt"]
    assert turn1.user_prompt == prompts["single-v1"]["prompt_template"].format(
        question=writing["turns"][0], answer="first answer")
    for text in (writing["turns"][0], writing["turns"][1], "first answer", "second answer"):
        assert text in turn2.user_prompt  # turn 2 is judged with the whole conversation
    m1, m2 = build_requests(math, answer_row(math), prompts, refs[math["question_id"]])
    assert (m1.prompt_name, m2.prompt_name) == ("single-math-v1", "single-math-v1-multi-turn")
    ref_turns = refs[math["question_id"]]["choices"][0]["turns"]
    assert ref_turns[0] in m1.user_prompt and ref_turns[1] in m2.user_prompt
    assert prompt_name("coding", 2) == "single-math-v1-multi-turn" and prompt_name("stem", 1) == "single-v1"


def write_answers(tmp_path, lang="EN", per_category=1):
    questions = load_questions(BENCH, lang, per_category)
    path = tmp_path / f"answers_{lang}.jsonl"
    write_jsonl(path, [answer_row(q, (f"answer one {q['question_id']}", f"answer two {q['question_id']}"))
                       for q in questions])
    return path, questions


JUDGE = {"model": "gpt-4", "base_url": None, "api_key_env": "MLIT_TEST_KEY", "temperature": 0.0,
         "max_tokens": 64, "parallel": 4, "max_retries": 3, "timeout_s": 5, "retry_initial_s": 0.01}


def test_failures_are_recorded_retried_and_never_paid_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIT_TEST_KEY", PLANTED_KEY)
    answers, questions = write_answers(tmp_path)
    ids = [q["question_id"] for q in questions]  # 8 questions, 16 requests
    garbage, broken, limited, flaky, dropped = ids[0], ids[1], ids[2], ids[3], ids[4]
    state = {"broken_fixed": False}

    def behaviour(request, attempt):
        prompt = request["messages"][-1]["content"]
        if f"answer one {garbage}" in prompt:
            return ("reply", "I refuse to give a number.")
        if f"answer one {broken}" in prompt and not state["broken_fixed"]:
            return ("status", 500, {})
        if f"answer one {limited}" in prompt and attempt == 0:
            return ("status", 429, {"Retry-After": "0"})
        if f"answer one {flaky}" in prompt and attempt < 2:
            return ("status", 503, {})
        if f"answer one {dropped}" in prompt and attempt == 0:
            return ("drop",)
        return ("reply", "Solid. Rating: [[6]]")

    cache = tmp_path / "cache"
    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url}
        counts = judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(cache))
        rows = read_jsonl(tmp_path / "out" / "EN.jsonl")
        assert len(rows) == 16 and counts["requests"] == 16
        failed = {(r["question_id"], r["turn"]) for r in rows if r["score"] is None}
        # the garbage replies and the always-500 question fail (both turns); the rest recover
        assert failed == {(garbage, 1), (garbage, 2), (broken, 1), (broken, 2)}
        assert all(r["error"] for r in rows if r["score"] is None)
        assert "no parsable rating" in next(r for r in rows if r["question_id"] == garbage and r["turn"] == 1)["error"]
        assert all(r["score"] == 6.0 for r in rows if r["score"] is not None)
        assert server.headers[0]["authorization"] == f"Bearer {PLANTED_KEY}"
        first_run = len(server.requests)
        assert first_run == 16 + 3 * 2 + 2 * 1 + 2 * 2 + 2 * 1  # retries: broken 3 per turn, 429, 503 x2, drop

        state["broken_fixed"] = True  # the next run retries only what failed to arrive
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(cache))
        assert len(server.requests) - first_run == 2
        rows = read_jsonl(tmp_path / "out" / "EN.jsonl")
        assert {(r["question_id"], r["turn"]) for r in rows if r["score"] is None} == {(garbage, 1), (garbage, 2)}

        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(cache))
        assert len(server.requests) - first_run == 2  # nothing paid twice: the rerun made zero calls
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY not in path.read_text(errors="replace"), f"API key leaked into {path}"


def test_answers_for_unknown_questions_are_rejected(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"question_id": "999_EN", "choices": [{"turns": ["a", "b"]}], "model_id": "m"}])
    with pytest.raises(ValueError, match=r"a.jsonl:1: question_id '999_EN' is not an MT-Bench-X EN question"):
        requests_for(path, BENCH, "EN")


def test_an_endpoint_that_rejects_everything_fails_the_job_loudly(tmp_path):
    from mlit.judge import JudgeEndpointError

    answers, _ = write_answers(tmp_path)
    with OpenAIServer(lambda request, attempt: ("status", 400, {})) as server:
        with pytest.raises(JudgeEndpointError, match="failed every request.*judge.model"):
            judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", {**JUDGE, "base_url": server.base_url},
                       str(tmp_path / "cache"))
        assert len(server.requests) == 16  # a 400 is not retried


def test_off_language_answers_are_reported_or_rated_1(tmp_path):
    questions = load_questions(BENCH, "DE", per_category=1)[:2]
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, [
        {"question_id": questions[0]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
            "Die Hauptstadt von Deutschland ist Berlin, und sie ist sehr schön.",
            "The capital of Germany is Berlin and it is a beautiful city."]}]},
        {"question_id": questions[1]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
            "Ich schreibe gern lange Briefe an meine Freunde in der Stadt.", ""]}]},
    ])
    with OpenAIServer() as server:
        for rule, english_score in (("report", 7.0), ("score_1", 1.0)):
            judge = {**JUDGE, "base_url": server.base_url, "off_language": rule}
            judge_cell({"DE": str(path)}, str(BENCH), tmp_path / rule, judge, str(tmp_path / "cache"))
            rows = {(r["question_id"], r["turn"]): r for r in read_jsonl(tmp_path / rule / "DE.jsonl")}
            english = rows[questions[0]["question_id"], 2]
            assert english["answer_lang"] == "EN" and english["on_language"] is False
            assert english["score"] == english_score
            german = rows[questions[0]["question_id"], 1]
            assert german["answer_lang"] == "DE" and german["on_language"] and german["score"] == 7.0
            empty = rows[questions[1]["question_id"], 2]
            assert empty["answer_lang"] is None and empty["on_language"]
