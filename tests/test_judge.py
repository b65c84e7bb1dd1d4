import json

import pytest

from mlit.results.analysis import judge_health
from mlit.files import read_jsonl, write_jsonl
from mlit.judge.step import FAILURE_KINDS, judge_cell, judged_row, requests_for
from mlit.judge.prompts import build_requests, parse_rating, prompt_name
from mlit.data.mtbench import load_judge_prompts, load_questions, load_references
from mlit.results.tables import load_long

from conftest import BENCH, LANGS, demo_config
from support.scripted_server import OpenAIServer

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
        # the kind is written as a field: a reply without a rating, a 500 after the retries, none for a score
        assert {(r["question_id"], r["turn"]): r["failure"] for r in rows if r["score"] is None} == {
            (garbage, 1): "unparsable", (garbage, 2): "unparsable", (broken, 1): "api_error", (broken, 2): "api_error"}
        assert all(r["failure"] is None for r in rows if r["score"] is not None)
        assert counts["failed"] == 4 and counts["api_errors"] == 2
        long, _ = load_long([str(tmp_path / "out" / "EN.jsonl")], {"m": {"cell": "m"}})
        health = judge_health(long).row(0, named=True)  # and read back from it
        assert (health["failed"], health["unparsable_replies"], health["api_errors"]) == (4, 2, 2)
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
    from mlit.judge.step import JudgeEndpointError

    answers, _ = write_answers(tmp_path)
    with OpenAIServer(lambda request, attempt: ("status", 400, {})) as server:
        with pytest.raises(JudgeEndpointError, match="failed every request.*judge.model"):
            judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", {**JUDGE, "base_url": server.base_url},
                       str(tmp_path / "cache"))
        assert len(server.requests) == 16  # a 400 is not retried


def test_off_language_answers_are_reported_or_rated_1(tmp_path):
    questions = load_questions(BENCH, "DE", per_category=1)[:3]
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, [
        {"question_id": questions[0]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
            "Die Hauptstadt von Deutschland ist Berlin, und sie ist sehr schön.",
            "The capital of Germany is Berlin and it is a beautiful city."]}]},
        {"question_id": questions[1]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
            "Ich schreibe gern lange Briefe an meine Freunde in der Stadt.", ""]}]},
        # no letter at all: in no language (fastText would call it English), so the judge rates it
        {"question_id": questions[2]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
            "1492.", "12, 13, 14 = 39!"]}]},
    ])
    with OpenAIServer() as server:
        # (off_language, no_language): requests sent of 6; the answers in no language (one empty, two
        # bare numbers) go to the judge unless no_language says they are not in the question's language
        for rule, no_language, sent in (("report", "judge", 6), ("score_1", "judge", 5), ("score_1", "off_language", 2)):
            judge = {**JUDGE, "base_url": server.base_url, "off_language": rule, "no_language": no_language}
            before, out = len(server.requests), tmp_path / f"{rule}_{no_language}"
            counts = judge_cell({"DE": str(path)}, str(BENCH), out, judge, str(out / "cache"))
            # under score_1 the English answer's score is fixed: it is never sent (nor paid for)
            assert len(server.requests) - before == sent and counts["not_sent"] == 6 - sent
            rows = {(r["question_id"], r["turn"]): r for r in read_jsonl(out / "DE.jsonl")}
            english = rows[questions[0]["question_id"], 2]
            assert english["answer_lang"] == "EN" and english["on_language"] is False
            assert english["score"] == (7.0 if rule == "report" else 1.0)
            assert english["failure"] is None  # a score, not a failure
            assert (english["judgment"] is None) == (rule == "score_1")
            german = rows[questions[0]["question_id"], 1]
            assert german["answer_lang"] == "DE" and german["on_language"] and german["score"] == 7.0
            in_no_language = [rows[questions[1]["question_id"], 2], rows[questions[2]["question_id"], 1],
                              rows[questions[2]["question_id"], 2]]
            for row in in_no_language:  # fastText alone would call '1492.' English
                assert row["answer_lang"] is None and row["on_language"] == (no_language == "judge")
                assert row["score"] == (7.0 if no_language == "judge" else 1.0) and row["failure"] is None


def test_off_language_answers_are_judged_unless_the_config_says_score_1(tmp_path):
    """The schema's default of judge.off_language is 'report' (MT-Bench-X's own rule: the judge rates
    every answer); rating off-language answers 1 is the Finnish MT-Bench's rule, chosen explicitly."""
    import copy


    from mlit.config import Grid, section_defaults

    from conftest import REPO

    assert section_defaults("judge", {"model": "x"})["off_language"] == "report"
    config = demo_config()
    del config["judge"]["off_language"]
    assert Grid(copy.deepcopy(config), repo_root=REPO).config["judge"]["off_language"] == "report"
    questions = load_questions(BENCH, "DE", per_category=1)[:1]
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, [{"question_id": questions[0]["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": [
        "The capital of Germany is Berlin and it is a beautiful city.",
        "It has many museums, parks and old buildings to visit."]}]}])
    with OpenAIServer() as server:
        judge = {key: value for key, value in JUDGE.items() if key != "off_language"}
        counts = judge_cell({"DE": str(path)}, str(BENCH), tmp_path / "out", {**judge, "base_url": server.base_url},
                            str(tmp_path / "cache"))
    assert counts["not_sent"] == 0 and len(server.requests) == 2
    assert [(r["on_language"], r["score"]) for r in read_jsonl(tmp_path / "out" / "DE.jsonl")] == [(False, 7.0)] * 2


def test_repeated_samples_fail_as_unparsable_if_any_reply_arrived_else_as_api_error():
    question = load_questions(BENCH, "EN", per_category=1)[0]
    answer = answer_row(question, ("The answer is here, in English.", "And a second one, also English."))
    request = build_requests(question, answer, load_judge_prompts(BENCH, "EN"), None)[0]
    reply = {"judgment": "I refuse.", "error": None, "failure": None, "usage": None}
    lost = {"judgment": None, "error": "InternalServerError: 500", "failure": "api_error", "usage": None}
    rated = {**reply, "judgment": "Rating: [[7]]"}

    def row(*repeated, off_language="report"):
        return judged_row(answer, request, list(repeated), "EN", "gpt-4", off_language)

    assert (row(reply)["failure"], row(lost)["failure"], row(rated)["failure"]) == ("unparsable", "api_error", None)
    mixed = row(lost, reply, lost)
    assert mixed["failure"] == "unparsable" and mixed["score"] is None
    assert "2 of 3 samples failed" in mixed["error"] and "InternalServerError" in mixed["error"]
    assert row(lost, lost)["failure"] == "api_error" and row(lost, rated)["score"] == 7.0
    assert row(lost, rated)["failure"] is None
    assert set(FAILURE_KINDS) == {"unparsable", "api_error"}


# --- secrets and keys -------------------------------------------------------------------------------

def test_redaction_removes_the_key_bearer_and_sk_tokens():
    from mlit.redact import redact

    key = 'vllm-token-"x/y\\z"-42'
    text = f"bad key {key} (sent as Bearer {key}); escaped in JSON: {json.dumps(key)}; " \
           "other: sk-proj-abcdef0123456789 and bearer abc.def-ghi"
    redacted = redact(text, [key])
    for secret in (key, json.dumps(key)[1:-1], "sk-proj-abcdef0123456789", "abc.def-ghi"):
        assert secret not in redacted
    assert redacted.count("[REDACTED]") == 5 and redacted.startswith("bad key [REDACTED] (sent as Bearer [REDACTED])")
    assert redact("a 401 from x", ["x"]) == "a 401 from x"  # too short to be a key: the text stays readable


def key_echoing_server(code: int) -> OpenAIServer:
    """An OpenAIServer whose every POST is answered with ``code`` and an error body that echoes the
    request's key, bare and as 'Bearer <key>' (as some endpoints do)."""
    server = OpenAIServer()

    class Echoing(server.httpd.RequestHandlerClass):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with server.lock:
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
            sent = self.headers.get("Authorization", "")
            message = f"Incorrect API key provided: {sent.removeprefix('Bearer ')}. You sent header '{sent}'."
            self.send_json({"error": {"message": message, "type": "invalid_request_error"}}, code)

    server.httpd.RequestHandlerClass = Echoing
    return server


@pytest.mark.parametrize("code, key, mode", [
    (401, PLANTED_KEY, "online"),
    (500, PLANTED_KEY, "online"),
    (401, "local-token-PLANTED-4242", "online"),  # not sk-shaped: found as the value of launch.judge.api_key_env
    (500, "local-token-PLANTED-4242", "batch"),
])
def test_an_endpoint_echoing_the_key_leaks_it_nowhere(tmp_path, code, key, mode):
    """The judge step as the workflow runs it (``mlit judge ... > log 2>&1``) against an endpoint
    whose errors echo the key: the key is in no file written, no row, no log, no output."""
    import os
    import subprocess
    import sys

    answers, _ = write_answers(tmp_path)
    log = tmp_path / "logs" / "judge" / "cell.log"
    log.parent.mkdir(parents=True)
    with key_echoing_server(code) as server:
        judge = {**JUDGE, "base_url": server.base_url, "mode": mode, "batch_poll_s": 0.01}
        with log.open("w") as handle:
            result = subprocess.run(
                [sys.executable, "-m", "mlit", "judge", "--answers", f"EN={answers}", "--bench", str(BENCH),
                 "--judge", json.dumps(judge), "--cache", str(tmp_path / "cache"),
                 "--out-dir", str(tmp_path / "judgments")],
                stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "MLIT_TEST_KEY": key}, timeout=120)
        assert server.headers and all(h["authorization"] == f"Bearer {key}" for h in server.headers)
    output = log.read_text()
    assert key not in output and key[-12:] not in output, output[-3000:]
    assert result.returncode != 0 and "JudgeEndpointError" in output and "[REDACTED]" in output
    if mode == "online":
        rows = read_jsonl(tmp_path / "judgments" / "EN.jsonl")
        assert rows and all("[REDACTED]" in row["error"] and key not in row["error"] for row in rows)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert log in written
    for path in written:
        assert key not in path.read_text(errors="replace"), f"API key leaked into {path}"


def test_an_error_raised_with_the_key_is_redacted(tmp_path, monkeypatch, capsys):
    """An error that escapes the judge (not recorded per request) is raised redacted."""
    import mlit.judge.step
    from mlit.judge.step import JudgeEndpointError

    monkeypatch.setenv("MLIT_TEST_KEY", "local-token-PLANTED-4242")

    def leaking(*args, **kwargs):
        raise RuntimeError("upstream said: local-token-PLANTED-4242 / Bearer local-token-PLANTED-4242")

    monkeypatch.setattr(mlit.judge.step, "judge_all", leaking)
    answers, _ = write_answers(tmp_path)
    with pytest.raises(JudgeEndpointError) as raised:
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", {**JUDGE, "base_url": "http://127.0.0.1:9/v1"},
                   str(tmp_path / "cache"))
    assert "PLANTED" not in str(raised.value) and "RuntimeError: upstream said: [REDACTED]" in str(raised.value)
    assert raised.value.__suppress_context__
    assert "PLANTED" not in "".join(capsys.readouterr())


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_remote_endpoint_without_a_key_stops_before_any_request(tmp_path, monkeypatch, value):
    from mlit.judge.client import MissingAPIKeyError

    if value is None:
        monkeypatch.delenv("MLIT_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("MLIT_TEST_KEY", value)
    answers, _ = write_answers(tmp_path)
    # an unroutable address: a request would hang until the timeout instead of failing at once
    judge = {**JUDGE, "base_url": "http://192.0.2.1:8000/v1", "timeout_s": 60}
    with pytest.raises(MissingAPIKeyError) as raised:
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
    assert str(raised.value) == (
        "the judge endpoint http://192.0.2.1:8000/v1 is not on this machine, but the variable $MLIT_TEST_KEY "
        "(named by launch.judge.api_key_env) is unset or empty; export the key in $MLIT_TEST_KEY, or set "
        "launch.judge.api_key_env to the variable that holds it. Nothing was sent.")
    assert not (tmp_path / "out").exists()


def test_a_local_endpoint_runs_without_a_key_and_a_cached_run_needs_none(tmp_path, monkeypatch):
    from mlit.judge.client import is_loopback

    monkeypatch.delenv("MLIT_TEST_KEY", raising=False)
    answers, _ = write_answers(tmp_path)
    with OpenAIServer() as server:
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", {**JUDGE, "base_url": server.base_url},
                   str(tmp_path / "cache"))
        assert server.headers and all(h["authorization"] == "Bearer EMPTY" for h in server.headers)
    assert all(row["score"] == 7.0 for row in read_jsonl(tmp_path / "out" / "EN.jsonl"))
    # everything is cached: a remote endpoint without a key is not needed, so nothing stops the run
    remote = {**JUDGE, "base_url": "https://api.example.com/v1"}
    counts = judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "again", remote, str(tmp_path / "cache"))
    assert counts["cached"] == counts["requests"] == 16
    for url in ("http://127.0.0.1:8000/v1", "http://127.3.2.1/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1",
                "http://LOCALHOST/v1"):
        assert is_loopback(url), url
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "http://0.0.0.0:8000/v1",
                "http://localhost.example.com/v1", "http://[::2]/v1", "api.openai.com/v1", ""):
        assert not is_loopback(url), url


def test_answers_missing_questions_stop_the_judge_before_any_request(tmp_path):
    import subprocess
    import sys

    questions = load_questions(BENCH, "EN", per_category=1)  # generation.questions_per_category: 1 -> 8
    cut = tmp_path / "EN.jsonl"
    write_jsonl(cut, [answer_row(q) for q in questions[:3]])
    complete, _ = write_answers(tmp_path, "DE")
    missing = ", ".join(q["question_id"] for q in questions[3:])
    with OpenAIServer() as server:
        judge = {**JUDGE, "base_url": server.base_url}
        # the complete DE file comes first: still nothing is sent, every file is checked before the first request
        with pytest.raises(ValueError, match=rf"{cut}: 5 of 8 expected EN questions have no answer "
                                             rf"\(generation.questions_per_category: 1\): {missing}"):
            judge_cell({"DE": str(complete), "EN": str(cut)}, str(BENCH), tmp_path / "out", judge,
                       str(tmp_path / "cache"), questions_per_category=1)
        result = subprocess.run([sys.executable, "-m", "mlit", "judge", "--answers", f"EN={cut}", "--bench", str(BENCH),
                                 "--questions-per-category", "1", "--judge", json.dumps(judge), "--cache",
                                 str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out")],
                                capture_output=True, text=True)
        assert result.returncode != 0 and f"{cut}: 5 of 8 expected EN questions have no answer" in result.stderr
        assert "nothing was sent to the judge" in result.stderr
        assert len(server.requests) == 0  # nothing sent, nothing paid
    assert not (tmp_path / "out").exists()


def test_duplicated_unknown_or_unselected_answers_stop_the_judge(tmp_path):
    questions = load_questions(BENCH, "EN")
    selected = load_questions(BENCH, "EN", per_category=1)
    unselected = next(q for q in questions if q not in selected)
    rows = [answer_row(q) for q in selected] + [answer_row(selected[2]), answer_row(unselected),
                                               {**answer_row(selected[0]), "question_id": "999_EN"}]
    path = tmp_path / "EN.jsonl"
    write_jsonl(path, rows)
    with OpenAIServer() as server:
        with pytest.raises(ValueError) as error:
            judge_cell({"EN": str(path)}, str(BENCH), tmp_path / "out", {**JUDGE, "base_url": server.base_url},
                       str(tmp_path / "cache"), questions_per_category=1)
        assert len(server.requests) == 0
    message = str(error.value)
    assert f"{path}:9: question_id '{selected[2]['question_id']}' is answered twice (first on line 3)" in message
    assert (f"{path}:10: question_id '{unselected['question_id']}' is not one of the 8 expected EN questions "
            "(generation.questions_per_category: 1)") in message
    assert f"{path}:11: question_id '999_EN' is not an MT-Bench-X EN question" in message
    # all 80 questions expected (questions_per_category null): the 9 answered ones are not enough
    with pytest.raises(ValueError, match=rf"{path}: 71 of 80 expected EN questions have no answer: "):
        requests_for(path, BENCH, "EN", questions_per_category=None)


@pytest.mark.parametrize("reply, score", [
    ("Rating: [[08]]", None),  # no number literal (ast.literal_eval raised SyntaxError on it)
    ("Rating: [[٧]]", None),  # Arabic-Indic seven: '\d' matched it
    ("Rating: [[７]]", None),  # fullwidth seven
    ("Rating: [[7.5.1]]", None),
    ("Rating: [[1e3]]", None),
    ("Rating: [[7.]]", 7.0), ("Rating: [[08.5]]", 8.5), ("Rating: [[10]]", 10.0), ("Rating: [[1]]", 1.0),
])
def test_rating_parser_reads_ascii_numbers_and_never_raises(reply, score):
    assert parse_rating(reply) == score


def test_odd_ratings_are_recorded_unparsable_and_their_cached_replies_parse_on_a_rerun(tmp_path):
    answers, questions = write_answers(tmp_path)
    odd = {questions[0]["question_id"]: "Rating: [[08]]", questions[1]["question_id"]: "Rating: [[٧]]",
           questions[2]["question_id"]: "Rating: [[7.5.1]]"}

    def behaviour(request, attempt):
        prompt = request["messages"][-1]["content"]
        return ("reply", next((reply for qid, reply in odd.items() if f"answer one {qid}" in prompt),
                              "Fine. Rating: [[6]]"))

    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url}
        for run in range(2):  # the second run reads every reply from the cache and parses it again
            counts = judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
            rows = read_jsonl(tmp_path / "out" / "EN.jsonl")
            assert {(r["question_id"], r["turn"]): r["failure"] for r in rows if r["score"] is None} == {
                (qid, turn): "unparsable" for qid in odd for turn in (1, 2)}
            assert all(r["score"] == 6.0 for r in rows if r["question_id"] not in odd)
            assert counts["failed"] == 6 and counts["cached"] == 16 * run
        assert len(server.requests) == 16  # the rerun sent nothing


def test_a_cache_entry_without_a_reply_text_is_requested_again(tmp_path):
    from mlit.judge.client import JudgeCache

    cache = JudgeCache(tmp_path)
    for text in ('{"judgment": null}', '["not", "an", "entry"]', '{"judgment": 7}', '\udcff'):
        cache.path("ab" * 32).parent.mkdir(parents=True, exist_ok=True)
        cache.path("ab" * 32).write_text(text, errors="surrogateescape")
        assert cache.get("ab" * 32) is None


def test_timeout_s_is_a_deadline_for_the_whole_request(tmp_path):
    """A server that trickles its reply (status line, headers and body) a byte every 0.2 s: each read
    gets a byte in time, so httpx's per-read timeout never fires and the reply took a minute per attempt,
    then counted as a score. launch.judge.timeout_s: 5 ends each attempt at 5 s: api_error after the retries."""
    import time

    answers, questions = write_answers(tmp_path)
    slow = questions[0]["question_id"]

    def behaviour(request, attempt):
        if f"answer one {slow}" in request["messages"][-1]["content"]:
            return ("trickle", 0.2, "Fine. Rating: [[9]]")
        return ("reply", "Fine. Rating: [[6]]")

    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url, "timeout_s": 5, "max_retries": 1, "retry_initial_s": 0}
        started = time.monotonic()
        counts = judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        took = time.monotonic() - started
    rows = {(r["question_id"], r["turn"]): r for r in read_jsonl(tmp_path / "out" / "EN.jsonl")}
    for turn in (1, 2):
        row = rows[slow, turn]
        assert (row["score"], row["failure"]) == (None, "api_error")
        assert "no complete reply within launch.judge.timeout_s = 5 s" in row["error"]
    assert counts["api_errors"] == 2 and sum(r["score"] == 6.0 for r in rows.values()) == 14
    assert sum(slow in r["messages"][-1]["content"] for r in server.requests) == 2 * 2  # 1 retry per turn
    assert took < 2 * 5 + 30  # two attempts of 5 s (and the other requests), not two minutes and more


def test_a_reply_far_beyond_max_tokens_is_a_failure_and_is_stored_nowhere(tmp_path):
    """A 20 MB reply to max_tokens: 32 was read whole and stored in the cache, the rows and the tables."""
    answers, questions = write_answers(tmp_path)
    huge = questions[0]["question_id"]
    flood = "Rating: [[7]] " + "x" * 20_000_000

    def behaviour(request, attempt):
        return ("reply", flood if f"answer one {huge}" in request["messages"][-1]["content"] else "Fine. Rating: [[6]]")

    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url, "max_tokens": 32, "max_retries": 2, "retry_initial_s": 0}
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
    rows = {(r["question_id"], r["turn"]): r for r in read_jsonl(tmp_path / "out" / "EN.jsonl")}
    for turn in (1, 2):
        row = rows[huge, turn]
        assert (row["score"], row["failure"], row["judgment"]) == (None, "api_error", None)
        assert "the judge's reply is larger than 73728 bytes" in row["error"]
    assert sum(huge in r["messages"][-1]["content"] for r in server.requests) == 2  # not retried: it is no outage
    assert (tmp_path / "out" / "EN.jsonl").stat().st_size < 100_000
    cached = [path for path in (tmp_path / "cache").rglob("*.json")]
    assert len(cached) == 14 and max(path.stat().st_size for path in cached) < 10_000
    long, _ = load_long([str(tmp_path / "out" / "EN.jsonl")], {"m": {"cell": "m"}})
    assert long["judgment"].str.len_bytes().max() < 1000


def test_failed_requests_raise_the_retry_round_and_a_clean_rerun_keeps_it(tmp_path, capsys):
    """mlit.judge.retry, as the workflow's judge rule drives it (its params hold the round): a job that
    ends with api_error requests writes round + 1 (the next run reruns it), a job without keeps its round."""
    from mlit.judge import retry

    answers, questions = write_answers(tmp_path)
    broken = questions[0]["question_id"]
    state = {"fixed": False}

    def behaviour(request, attempt):
        if f"answer one {broken}" in request["messages"][-1]["content"] and not state["fixed"]:
            return ("status", 500, {})
        return ("reply", "Fine. Rating: [[6]]")

    out, cache = tmp_path / "out", str(tmp_path / "cache")
    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url, "max_retries": 0}
        judge_cell({"EN": str(answers)}, str(BENCH), out, judge, cache)  # by hand: no bookkeeping
        assert not (out / retry.FILE_NAME).exists()
        judge_cell({"EN": str(answers)}, str(BENCH), out, judge, cache, retry_round=0)
        assert retry.read(out / retry.FILE_NAME) == {"round": 1, "api_errors": 2}
        assert retry.pending({"c": out / retry.FILE_NAME, "d": tmp_path / "none.json"}) == {"c": 2}
        state["fixed"], sent = True, len(server.requests)
        judge_cell({"EN": str(answers)}, str(BENCH), out, judge, cache, retry_round=1)
        assert "the last judge run of this cell recorded 2 request(s)" in capsys.readouterr().out
        assert len(server.requests) - sent == 2 and retry.read(out / retry.FILE_NAME) == {"round": 1, "api_errors": 0}
        judge_cell({"EN": str(answers)}, str(BENCH), out, judge, cache, retry_round=1)
        assert len(server.requests) - sent == 2 and retry.read(out / retry.FILE_NAME) == {"round": 1, "api_errors": 0}
    for text in ("", "[1]", '{"round": -1, "api_errors": "2"}', '{"round": true}'):
        (tmp_path / "odd.json").write_text(text)
        assert retry.read(tmp_path / "odd.json") == {"round": 0, "api_errors": 0}


def test_the_judge_client_keeps_the_environments_proxy(monkeypatch):
    """The deadline needs the client's own transport, and httpx reads proxy variables only without one."""
    from mlit.judge.deadline import environment_proxy, http_client

    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert environment_proxy("https://api.openai.com/v1") == "http://127.0.0.1:3128"
    assert environment_proxy("http://127.0.0.1:8000/v1") is None
    assert type(http_client("https://api.openai.com/v1")._transport._pool).__name__ == "HTTPProxy"
