"""The judge step: MT-Bench-X single-answer grading of one grid cell's answers in each language.

Writes one judgment file per language with FastChat's judgment fields (``question_id, model, judge,
user_prompt, judgment, score, turn``) plus ``category, lang, prompt_name, error``. A reply without a
parsable 1-10 rating has ``score: null`` and an ``error``: it is counted as failed in the tables,
never averaged as a number.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

from mlit.io import read_jsonl, sha256_file, write_jsonl
from mlit.judge_client import JudgeCache, JudgeSettings, judge_all
from mlit.judge_prompts import build_requests, parse_rating
from mlit.langcheck import detect_language
from mlit.mtbench import load_judge_prompts, load_questions, load_references


def requests_for(answers_path: str | Path, bench_dir: str | Path, lang: str):
    """(answer row, JudgeRequest) pairs for every answered question of one language."""
    questions = {q["question_id"]: q for q in load_questions(bench_dir, lang)}
    references = load_references(bench_dir, lang)
    prompts = load_judge_prompts(bench_dir, lang)
    pairs = []
    for index, answer in enumerate(read_jsonl(answers_path), start=1):
        question = questions.get(answer.get("question_id"))
        if question is None:
            raise ValueError(f"{answers_path}:{index}: question_id {answer.get('question_id')!r} is not an "
                             f"MT-Bench-X {lang} question")
        turns = answer.get("choices", [{}])[0].get("turns")
        if not isinstance(turns, list) or len(turns) != 2:
            raise ValueError(f"{answers_path}:{index}: choices[0].turns must hold the two answer turns")
        for request in build_requests(question, answer, prompts, references.get(question["question_id"])):
            pairs.append((answer, request))
    return pairs


def write_dry_run(answer_files: dict[str, str], bench_dir: str, out: Path) -> int:
    """The requests a judge run would send, one JSON line each; calls nothing."""
    rows = [{"question_id": request.question_id, "turn": request.turn, "prompt_name": request.prompt_name,
             "system_prompt": request.system_prompt, "user_prompt": request.user_prompt}
            for lang, path in answer_files.items() for _, request in requests_for(path, bench_dir, lang)]
    write_jsonl(out, rows)
    return len(rows)


class JudgeEndpointError(RuntimeError):
    """The endpoint rejected every request of a job: a wrong URL, model name or key, not bad luck."""


def judge_cell(answer_files: dict[str, str], bench_dir: str, out_dir: Path, judge: dict, cache_dir: str,
               endpoint: tuple[str, dict] | None = None) -> dict:
    """Judge every language of a cell; returns counts. ``endpoint`` is (base_url, settings overrides)."""
    base_url, overrides = endpoint or (None, {})
    settings = JudgeSettings.from_config(judge, base_url, **overrides)
    cache = JudgeCache(cache_dir)
    counts = {"requests": 0, "cached": 0, "failed": 0, "api_errors": 0}
    first_api_error = None
    for lang, answers_path in answer_files.items():
        pairs = requests_for(answers_path, bench_dir, lang)
        results = judge_all([request for _, request in pairs], settings, cache, desc=f"judge {lang}")
        rows = []
        for (answer, request), result in zip(pairs, results):
            score = parse_rating(result["judgment"]) if result["judgment"] is not None else None
            error = result["error"]
            if error is None and score is None:
                error = "no parsable rating [[1-10]] in the judge's reply"
            answer_lang = detect_language(answer["choices"][0]["turns"][request.turn - 1])
            on_language = answer_lang is None or answer_lang == lang
            if not on_language and judge.get("off_language") == "score_1":
                score, error = 1.0, None  # the Finnish MT-Bench rule: an answer in another language gets 1
            rows.append({
                "question_id": request.question_id, "model": answer["model_id"], "judge": [settings.model,
                request.prompt_name], "user_prompt": request.user_prompt, "judgment": result["judgment"],
                "score": score, "turn": request.turn, "tstamp": time.time(), "category": request.category,
                "lang": lang, "prompt_name": request.prompt_name, "error": error, "usage": result["usage"],
                "answer_lang": answer_lang, "on_language": on_language,
            })
            counts["requests"] += 1
            counts["cached"] += result["cached"]
            counts["failed"] += error is not None
            counts["api_errors"] += result["api_error"]
            first_api_error = first_api_error or (result["error"] if result["api_error"] else None)
        write_jsonl(out_dir / f"{lang}.jsonl", rows)
    print(f"judged {counts['requests']} turns: {counts['cached']} from the cache, {counts['failed']} failed "
          f"({counts['api_errors']} API errors)")
    if counts["requests"] and counts["api_errors"] == counts["requests"]:
        raise JudgeEndpointError(
            f"the judge endpoint {settings.base_url} failed every request, e.g. {first_api_error}; check "
            f"judge.base_url, judge.model and the key in ${settings.api_key_env}. Nothing was paid twice: "
            "successful calls are cached, so a rerun sends only what failed.")
    return counts


@contextlib.contextmanager
def judge_endpoint(judge: dict, judge_model_dir: str | None, log_path: Path):
    """(base_url, settings overrides): the configured endpoint, or a local server for the demo judge
    started for this job. A served model is requested by the name the server knows it by, and cached
    under the config's name plus a hash of its weights, so a retrained judge is never served stale."""
    if judge.get("base_url"):
        yield judge["base_url"], {}
        return
    from mlit.judge_server import serve

    weights = sorted(Path(judge_model_dir).glob("*.safetensors"))
    digest = hashlib.sha256("".join(sha256_file(w) for w in weights).encode()).hexdigest()[:12]
    with serve(judge_model_dir, log_path) as base_url:
        yield base_url, {"served_model": str(judge_model_dir), "model": f"{judge['model']}@{digest}"}
