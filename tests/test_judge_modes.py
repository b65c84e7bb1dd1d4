"""Batch API mode, repeated judging and the cost estimate, against the real local OpenAI server."""

import pytest

from mlit.files import read_jsonl
from mlit.judge.step import judge_cell, write_dry_run
from mlit.judge.batch_api import BatchJudge
from mlit.judge.client import JudgeCache, JudgeSettings
from mlit.results.tables import load_long
from mlit.results.analysis import judge_health

from conftest import BENCH
from support.scripted_server import OpenAIServer
from test_judge import JUDGE, PLANTED_KEY, write_answers

BATCH = {**JUDGE, "mode": "batch", "batch_poll_s": 0.01}


def test_batch_mode_collects_by_custom_id_and_retries_the_error_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIT_TEST_KEY", PLANTED_KEY)
    answers, questions = write_answers(tmp_path)
    flaky, broken = questions[0]["question_id"], questions[1]["question_id"]

    def behaviour(request, attempt):
        prompt = request["messages"][-1]["content"]
        if f"answer one {flaky}" in prompt and attempt == 0:
            return ("status", 500, {})
        if f"answer one {broken}" in prompt:
            return ("status", 400, {})
        return ("reply", f"Rating: [[{3 + len(prompt) % 5}]]")

    with OpenAIServer(behaviour) as server:
        judge = {**BATCH, "base_url": server.base_url, "max_retries": 2}
        counts = judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        rows = read_jsonl(tmp_path / "out" / "EN.jsonl")
        assert server.requests == []  # no online call: everything went through batches
        # round 1: 16 lines; round 2: the error file's 4 (flaky and broken, 2 turns); round 3: broken's 2
        assert [b["request_counts"]["total"] for b in server.batches.values()] == [16, 4, 2]
        failed = {(r["question_id"], r["turn"]) for r in rows if r["score"] is None}
        assert failed == {(broken, 1), (broken, 2)} and counts["failed"] == 2
        assert "status 400" in next(r for r in rows if r["question_id"] == broken)["error"]
        assert {r["failure"] for r in rows if r["score"] is None} == {"api_error"}  # a batch request that failed
        assert all(r["failure"] is None for r in rows if r["score"] is not None)
        for row in rows:  # each result landed on its own request (custom_id), not in file order
            if row["score"] is not None:
                assert row["score"] == 3 + len(row["user_prompt"]) % 5
        lines = len(server.batch_lines)
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        assert len(server.batch_lines) - lines == 2 * 3  # a rerun resubmits only the failed ones
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PLANTED_KEY not in path.read_text(errors="replace"), f"API key leaked into {path}"


def test_a_batch_reply_far_beyond_max_tokens_is_a_failure_and_is_not_cached(tmp_path):
    answers, questions = write_answers(tmp_path)
    huge = questions[0]["question_id"]

    def behaviour(request, attempt):
        flood = "Rating: [[7]] " + "x" * 2_000_000
        return ("reply", flood if f"answer one {huge}" in request["messages"][-1]["content"] else "Rating: [[6]]")

    with OpenAIServer(behaviour) as server:
        judge = {**BATCH, "base_url": server.base_url, "max_retries": 0, "max_tokens": 32}
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
    rows = [r for r in read_jsonl(tmp_path / "out" / "EN.jsonl") if r["question_id"] == huge]
    assert [(r["score"], r["failure"], r["judgment"]) for r in rows] == [(None, "api_error", None)] * 2
    assert "the judge's reply is larger than 73728 bytes" in rows[0]["error"]
    cached = [path for path in (tmp_path / "cache").rglob("*.json") if "batches" not in path.parts]
    assert len(cached) == 14 and max(path.stat().st_size for path in cached) < 10_000


def test_a_killed_batch_job_resumes_polling_instead_of_resubmitting(tmp_path):
    answers, _ = write_answers(tmp_path)
    with OpenAIServer(lambda request, attempt: ("reply", "Rating: [[8]]")) as server:
        judge = {**BATCH, "base_url": server.base_url}
        # the first job submitted its batch and was killed while polling
        from mlit.judge.step import requests_for

        requests = [request for _, request in requests_for(answers, BENCH, "EN")]
        settings = JudgeSettings.from_config(judge)
        cache = JudgeCache(tmp_path / "cache")
        BatchJudge(settings, cache, 0.01).submit([(cache.key(settings, r), r, 0) for r in requests])
        assert len(server.batches) == 1
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        assert len(server.batches) == 1 and len(server.batch_lines) == 16  # collected, not paid again
        assert {r["score"] for r in read_jsonl(tmp_path / "out" / "EN.jsonl")} == {8.0}


def test_repeated_judging_reports_the_median_and_the_spread(tmp_path):
    answers, _ = write_answers(tmp_path)
    ratings = {0: "[[4]]", 1: "[[9]]", 2: "[[5]]"}

    def behaviour(request, attempt):
        return ("reply", f"Rating: {ratings[request.get('seed', 0)]}")

    with OpenAIServer(behaviour) as server:
        judge = {**JUDGE, "base_url": server.base_url, "samples": 3}
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        assert len(server.requests) == 16 * 3
        rows = read_jsonl(tmp_path / "out" / "EN.jsonl")
        assert {r["score"] for r in rows} == {5.0}  # median of 4, 9, 5
        assert all(r["sample_scores"] == [4.0, 9.0, 5.0] and r["score_spread"] == 5.0 for r in rows)
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", judge, str(tmp_path / "cache"))
        assert len(server.requests) == 16 * 3  # all three samples are cached
        # dropping to one sample reuses sample 0: no call
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "one", {**judge, "samples": 1}, str(tmp_path / "cache"))
        assert len(server.requests) == 16 * 3
        assert {r["score"] for r in read_jsonl(tmp_path / "one" / "EN.jsonl")} == {4.0}
    long, _ = load_long([str(tmp_path / "out" / "EN.jsonl")], {"m": {"cell": "m"}})
    health = judge_health(long)
    assert health["mean_score_spread"].to_list() == [5.0] and health["max_score_spread"].to_list() == [5.0]


def test_dry_run_estimates_what_is_left_to_pay(tmp_path):
    answers, _ = write_answers(tmp_path)
    prices = {"prompt_per_1k": 0.03, "completion_per_1k": 0.06}
    judge = {**JUDGE, "base_url": "http://127.0.0.1:9/v1", "prices_per_1k": prices, "max_tokens": 1000}
    estimate = write_dry_run({"EN": str(answers)}, str(BENCH), tmp_path / "req.jsonl", judge, str(tmp_path / "c"))
    rows = read_jsonl(tmp_path / "req.jsonl")
    chars = sum(len(r["system_prompt"]) + len(r["user_prompt"]) for r in rows)
    assert estimate["to_send"] == 16 and abs(estimate["estimated_prompt_tokens"] - chars / 4) < 16
    expected = (estimate["estimated_prompt_tokens"] * 0.03 + 16 * 200 * 0.06) / 1000
    assert estimate["estimated_cost"] == pytest.approx(expected, abs=1e-4)
    assert estimate["estimated_cost_at_most"] == pytest.approx(
        (estimate["estimated_prompt_tokens"] * 0.03 + 16 * 1000 * 0.06) / 1000, abs=1e-4)
    batch = write_dry_run({"EN": str(answers)}, str(BENCH), tmp_path / "req.jsonl", {**judge, "mode": "batch"})
    assert batch["estimated_cost"] == pytest.approx(expected / 2, abs=1e-4)
    with OpenAIServer() as server:  # judged once: nothing left to pay
        judge_cell({"EN": str(answers)}, str(BENCH), tmp_path / "out", {**judge, "base_url": server.base_url},
                   str(tmp_path / "c"))
    again = write_dry_run({"EN": str(answers)}, str(BENCH), tmp_path / "req.jsonl",
                          {**judge, "base_url": server.base_url}, str(tmp_path / "c"))
    assert again["to_send"] == 0 and again["estimated_cost"] == 0
    unpriced = write_dry_run({"EN": str(answers)}, str(BENCH), tmp_path / "req.jsonl", JUDGE)
    assert unpriced["estimated_cost"] is None and unpriced["estimated_cost_at_most"] is None  # unknown, not free
