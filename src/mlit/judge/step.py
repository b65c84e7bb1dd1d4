"""The judge step: MT-Bench-X single-answer grading of one grid cell's answers in each language.

Writes one judgment file per language with FastChat's judgment fields (``question_id, model, judge,
user_prompt, judgment, score, turn``) plus ``category, lang, prompt_name, error, failure``. A failed
judgment has ``score: null``, an ``error`` (the text, for people) and a ``failure`` kind (one of
``FAILURE_KINDS``, for programs): it is counted as failed in the tables, never averaged as a number.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlit.records import FAILURE_KINDS, UNPARSABLE  # noqa: F401  (FAILURE_KINDS: re-exported)
from mlit.settings import section_defaults
from mlit.files import read_jsonl, sha256_file, write_jsonl
from mlit.judge import retry
from mlit.judge.client import JudgeCache, JudgeSettings, judge_all, judge_cost, redact_error
from mlit.judge.prompts import build_requests, parse_rating
from mlit.judge.langcheck import detect_language
from mlit.stratified import drawn
from mlit.data.mtbench import load_judge_prompts, load_questions, load_references


# ``questions_per_category`` when the expected questions are not known (a hand-made answers file):
# the answered ones are taken as expected; unknown and duplicated question ids are still errors.
ANSWERED = "answered"



def check_answers(answers_path: str | Path, bench_dir: str | Path, lang: str,
                  questions_per_category: int | None | str = ANSWERED) -> list[dict]:
    """The rows of an answers file, checked against the questions the generation step answers
    (``load_questions(bench_dir, lang, questions_per_category)``; None: all of them): a missing
    question, a duplicated or an unknown question id raises ValueError naming the file, the lines and
    the missing ids, before anything is sent to the judge."""
    questions = {q["question_id"] for q in load_questions(bench_dir, lang)}
    selected = None if questions_per_category == ANSWERED else \
        [q["question_id"] for q in load_questions(bench_dir, lang, questions_per_category)]
    note = f" (generation.questions_per_category: {questions_per_category})" if selected is not None and \
        questions_per_category is not None else ""
    rows = read_jsonl(answers_path)
    problems, seen = [], {}
    for index, answer in enumerate(rows, start=1):
        question_id = answer.get("question_id")
        if not isinstance(question_id, str) or question_id not in questions:
            problems.append(f"{answers_path}:{index}: question_id {question_id!r} is not an MT-Bench-X {lang} question")
        elif selected is not None and question_id not in selected:
            problems.append(f"{answers_path}:{index}: question_id {question_id!r} is not one of the {len(selected)} "
                            f"expected {lang} questions{note}")
        elif question_id in seen:
            problems.append(f"{answers_path}:{index}: question_id {question_id!r} is answered twice (first on line "
                            f"{seen[question_id]})")
        else:
            seen[question_id] = index
    missing = [question_id for question_id in selected or [] if question_id not in seen]
    if missing:
        problems.append(f"{answers_path}: {len(missing)} of {len(selected)} expected {lang} questions have no "
                        f"answer{note}: {', '.join(missing)}")
    if problems:
        raise ValueError("\n".join(problems + ["nothing was sent to the judge"]))
    return rows


def requests_for(answers_path: str | Path, bench_dir: str | Path, lang: str,
                 questions_per_category: int | None | str = ANSWERED):
    """(answer row, JudgeRequest) pairs for every answered question of one language, after
    ``check_answers``."""
    questions = {q["question_id"]: q for q in load_questions(bench_dir, lang)}
    references = load_references(bench_dir, lang)
    prompts = load_judge_prompts(bench_dir, lang)
    pairs = []
    for index, answer in enumerate(check_answers(answers_path, bench_dir, lang, questions_per_category), start=1):
        question = questions[answer["question_id"]]
        turns = answer.get("choices", [{}])[0].get("turns")
        if not isinstance(turns, list) or len(turns) != 2:
            raise ValueError(f"{answers_path}:{index}: choices[0].turns must hold the two answer turns")
        for request in build_requests(question, answer, prompts, references.get(question["question_id"])):
            pairs.append((answer, request))
    return pairs


def write_dry_run(answer_files: dict[str, str], bench_dir: str, out: Path, judge: dict | None = None,
                  cache_dir: str | None = None, questions_per_category: int | None | str = ANSWERED) -> dict:
    """The requests a judge run would send, one JSON line each; calls nothing. Returns a cost
    estimate: requests not yet in the cache (with ``judge`` and ``cache_dir``), prompt tokens
    estimated as characters / 4, completion tokens as a typical judgment (200) and at most
    ``judge.max_tokens``, priced with ``launch.judge.prices_per_1k``."""
    requests = [request for lang, path in answer_files.items()
                for _, request in requests_for(path, bench_dir, lang, questions_per_category)]
    write_jsonl(out, [{"question_id": r.question_id, "turn": r.turn, "prompt_name": r.prompt_name,
                       "system_prompt": r.system_prompt, "user_prompt": r.user_prompt} for r in requests])
    judge = section_defaults("judge", judge)  # a dry run by hand may give no (or part of the) judge section
    samples = int(judge["samples"])
    to_send = [(r, k) for r in requests for k in range(samples)]
    if cache_dir and judge.get("model"):
        settings = JudgeSettings.from_config(judge, judge["base_url"] or "http://unused")
        cache = JudgeCache(cache_dir)
        to_send = [(r, k) for r, k in to_send if cache.get(cache.key(settings, r, k)) is None]
    prompt_tokens = sum((len(r.system_prompt) + len(r.user_prompt)) // 4 for r, _ in to_send)
    discount = 0.5 if judge["mode"] == "batch" else 1.0  # the Batch API's price

    def estimate(completion_tokens: int) -> float | None:  # None without launch.judge.prices_per_1k
        total = judge_cost(prompt_tokens, completion_tokens, judge["prices_per_1k"])
        return None if total is None else round(total * discount, 4)

    return {"requests": len(requests), "samples": samples, "to_send": len(to_send),
            "estimated_prompt_tokens": prompt_tokens,
            "estimated_cost": estimate(200 * len(to_send)),
            "estimated_cost_at_most": estimate(int(judge["max_tokens"]) * len(to_send))}


def judged_row(answer: dict, request, repeated: list[dict], lang: str, judge_model: str,
               off_language: str | None, no_language: str = "judge") -> dict:
    """One judgment row from one or more judge replies to the same request. With several (repeated
    judging), the score is the median of the parsable ratings and their spread is recorded. Without a
    parsable rating, ``failure`` says why (``FAILURE_KINDS``): "unparsable" if any reply arrived,
    "api_error" if none did."""
    parsed = [parse_rating(r["judgment"]) if r["judgment"] is not None else None for r in repeated]
    ratings = sorted(x for x in parsed if x is not None)
    score = None
    if ratings:
        middle = len(ratings) // 2
        score = ratings[middle] if len(ratings) % 2 else (ratings[middle - 1] + ratings[middle]) / 2
    errors = [r["error"] for r in repeated if r["failure"] is not None]
    if ratings:
        error, failure = None, None
    elif len(errors) == len(repeated):
        error, failure = errors[0], "api_error"
    else:
        error, failure = UNPARSABLE + (f" ({len(errors)} of {len(repeated)} samples failed after their retries: "
                                       f"{errors[0]})" if errors else ""), "unparsable"
    answer_lang = detect_language(answer["choices"][0]["turns"][request.turn - 1])
    on_language = in_question_language(answer_lang, lang, no_language)
    if not on_language and off_language == "score_1":
        # the Finnish MT-Bench rule: an answer in another language gets 1, a score (not a failure)
        score, error, failure = 1.0, None, None
    usage = {name: sum((r["usage"] or {}).get(name, 0) for r in repeated)
             for name in ("prompt_tokens", "completion_tokens")} if any(r["usage"] for r in repeated) else None
    row = {"question_id": request.question_id, "model": answer["model_id"], "judge": [judge_model, request.prompt_name],
           "user_prompt": request.user_prompt, "judgment": repeated[0]["judgment"], "score": score,
           "turn": request.turn, "tstamp": time.time(), "category": request.category, "lang": lang,
           "prompt_name": request.prompt_name, "error": error, "failure": failure, "usage": usage,
           "answer_lang": answer_lang, "on_language": on_language}
    if len(repeated) > 1:
        row.update(samples=len(repeated), sample_scores=parsed, sample_judgments=[r["judgment"] for r in repeated],
                   score_spread=(ratings[-1] - ratings[0]) if ratings else None)
    return row


# The judge's "reply" to a request that is not sent (an off-language answer under judge.off_language: score_1)
NOT_SENT = {"judgment": None, "error": None, "failure": None, "usage": None, "cached": False}


def in_question_language(answer_lang: str | None, lang: str, no_language: str = "judge") -> bool:
    """Whether an answer detected as ``answer_lang`` counts as in the question's language ``lang``. An
    answer in no language (None: empty, or without a letter, '42') counts as in it under
    ``judge.no_language: judge`` (the judge rates it) and not under ``off_language``."""
    if answer_lang is None:
        return no_language == "judge"
    return answer_lang == lang


def answers_in(answer: dict, request, lang: str, no_language: str = "judge") -> bool:
    """Whether the judged turn of ``answer`` counts as in ``lang`` (``in_question_language``)."""
    answer_lang = detect_language(answer["choices"][0]["turns"][request.turn - 1])
    return in_question_language(answer_lang, lang, no_language)


class JudgeEndpointError(RuntimeError):
    """The endpoint rejected every request of a job: a wrong URL, model name or key, not bad luck."""


def judge_cell(answer_files: dict[str, str], bench_dir: str, out_dir: Path, judge: dict, cache_dir: str,
               endpoint: tuple[str, dict] | None = None,
               questions_per_category: int | None | str = ANSWERED, retry_round: int | None = None,
               share: tuple[float, int] | None = None) -> dict:
    """Judge every language of a cell; returns counts. ``endpoint`` is (base_url, settings overrides).
    Every answers file is checked (``check_answers``) before the first request is sent. With
    ``retry_round`` (the workflow's judge rule: its params), the requests that failed after their
    retries are recorded in ``out_dir/api_errors.json`` for the next run to retry (``mlit.judge.retry``).
    With ``share`` (fraction, seed: a further judge's ``judges.<name>.share``), only that share of each
    (language, category, turn) stratum of the cell is judged (``shared_turns``), and written.
    Per language: plan (what is sent), run (send it), records (one judgment row per turn), write."""
    requests_by_lang = {lang: requests_for(path, bench_dir, lang, questions_per_category)
                        for lang, path in answer_files.items()}
    if share is not None:
        requests_by_lang = {lang: shared_turns(pairs, lang, *share) for lang, pairs in requests_by_lang.items()}
    retry_file = Path(out_dir) / retry.FILE_NAME
    if retry_round is not None and (left := retry.read(retry_file)["api_errors"]):
        print(f"retrying: the last judge run of this cell recorded {left} request(s) that failed after their "
              "retries (api_error); they are sent again, and only they: every reply received is in the cache")
    judge = section_defaults("judge", judge)  # the workflow's is filled already; a test's or a hand-run's may not be
    base_url, overrides = endpoint or (None, {})
    settings = JudgeSettings.from_config(judge, base_url, **overrides)
    cache = JudgeCache(cache_dir)
    tally = Tally()
    for lang, pairs in requests_by_lang.items():
        fixed, requests, sample_ids = plan_requests(pairs, lang, judge)
        results = send_requests(requests, sample_ids, settings, cache, judge, f"{Path(out_dir).name} {lang}")
        rows = judgment_rows(pairs, fixed, results, lang, settings, judge, tally)
        write_jsonl(out_dir / f"{lang}.jsonl", rows)
    return finish(tally, judge, settings, retry_file, retry_round)


def shared_turns(pairs: list, lang: str, fraction: float, seed: int) -> list:
    """The (answer, request) pairs of one language of a cell that a judge with a share of the turns rates:
    ``fraction`` of each (category, turn) stratum, drawn by (seed, cell, language, question, turn) as
    ``mlit.judges.sample`` draws the same strata from a table of turns."""
    return drawn(pairs, key=lambda pair: (pair[0]["model_id"], lang, pair[1].question_id, pair[1].turn),
                 stratum=lambda pair: (pair[0]["model_id"], lang, pair[1].category, pair[1].turn),
                 fraction=fraction, seed=seed)


def plan_requests(pairs: list, lang: str, judge: dict) -> tuple[set[int], list, list[int]]:
    """What a language's judging sends: (the indexes of ``pairs`` that are not sent, the requests, each
    one's sample number). ``judge.off_language: score_1`` fixes the score of an answer in another language,
    so it is never sent; every other (answer, request) is sent ``judge.samples`` times."""
    samples = int(judge["samples"])
    fixed = {index for index, (answer, request) in enumerate(pairs)
             if judge["off_language"] == "score_1" and not answers_in(answer, request, lang, judge["no_language"])}
    sent = [request for index, (_, request) in enumerate(pairs) if index not in fixed]
    return fixed, [request for request in sent for _ in range(samples)], list(range(samples)) * len(sent)


def send_requests(requests: list, sample_ids: list[int], settings: JudgeSettings, cache: JudgeCache, judge: dict,
                  where: str) -> list[dict]:
    """The judge's replies (online, or through the Batch API), one per request; an error an endpoint raised
    that holds the key is raised redacted (JudgeEndpointError)."""
    try:
        if judge["mode"] == "batch":
            from mlit.judge.batch_api import judge_all_batch

            return judge_all_batch(requests, settings, cache, sample_ids, judge["batch_poll_s"])
        return judge_all(requests, settings, cache, desc=f"judge {where}", samples=sample_ids)
    except Exception as error:  # an endpoint may echo the key in an error it raises: never shown as is
        detail = f"{type(error).__name__}: {error}"
        if redact_error(detail, settings) != detail:
            raise JudgeEndpointError(redact_error(detail, settings)) from None
        raise


@dataclass
class Tally:
    """What a judge job counted over its languages: turns, cache hits, failures, tokens paid for."""

    counts: dict = field(default_factory=lambda: {"requests": 0, "cached": 0, "failed": 0, "api_errors": 0,
                                                  "not_sent": 0, "failed_requests": 0})
    spent: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    first_api_error: str | None = None


def judgment_rows(pairs: list, fixed: set[int], results: list[dict], lang: str, settings: JudgeSettings,
                  judge: dict, tally: Tally) -> list[dict]:
    """One judgment row (``judged_row``) per (answer, request) of a language, in order; counted in ``tally``."""
    samples = int(judge["samples"])
    counts = tally.counts
    rows, sent = [], 0
    for index, (answer, request) in enumerate(pairs):
        if index in fixed:
            rows.append(judged_row(answer, request, [NOT_SENT] * samples, lang, settings.model,
                                   judge["off_language"], judge["no_language"]))
            counts["requests"] += 1
            counts["not_sent"] += 1
            continue
        repeated = results[sent * samples:(sent + 1) * samples]
        sent += 1
        row = judged_row(answer, request, repeated, lang, settings.model, judge["off_language"],
                         judge["no_language"])
        row["error"] = redact_error(row["error"], settings) if row["error"] else None
        rows.append(row)
        counts["requests"] += 1
        counts["cached"] += all(r["cached"] for r in repeated)
        counts["failed"] += row["failure"] is not None
        api_failed = all(r["failure"] == "api_error" for r in repeated)  # no reply at all
        counts["api_errors"] += api_failed
        counts["failed_requests"] += sum(r["failure"] == "api_error" for r in repeated)  # what a rerun sends
        tally.first_api_error = tally.first_api_error or (
            redact_error(repeated[0]["error"], settings) if api_failed else None)
        for r in repeated:
            for name in ("prompt_tokens", "completion_tokens"):
                tally.spent[name] += 0 if r["cached"] else (r["usage"] or {}).get(name, 0)
    return rows


def finish(tally: Tally, judge: dict, settings: JudgeSettings, retry_file: Path, retry_round: int | None) -> dict:
    """Print what was judged and paid; raise when the endpoint failed every request; record the requests
    that failed after their retries for the next run. Returns the counts (with ``spent``)."""
    counts, spent = tally.counts, tally.spent
    print(f"judged {counts['requests']} turns: {counts['cached']} from the cache, {counts['not_sent']} not sent "
          f"(off-language, rated 1), {counts['failed']} failed ({counts['api_errors']} API errors)")
    paid = judge_cost(spent["prompt_tokens"], spent["completion_tokens"], judge["prices_per_1k"])
    print(f"spent: {spent['prompt_tokens']} prompt + {spent['completion_tokens']} completion tokens "
          f"= {'(no launch.judge.prices_per_1k)' if paid is None else f'{paid:.4f}'} on calls not in the cache")
    counts["spent"] = spent
    if counts["requests"] > counts["not_sent"] and counts["api_errors"] == counts["requests"] - counts["not_sent"]:
        raise JudgeEndpointError(
            f"the judge endpoint {settings.base_url} failed every request, e.g. {tally.first_api_error}; check "
            f"judge.base_url, judge.model and the key in ${settings.api_key_env}. Nothing was paid twice: "
            "successful calls are cached, so a rerun sends only what failed.")
    if retry_round is not None:
        retry.record(retry_file, retry_round, counts["failed_requests"])
        if counts["failed_requests"]:
            print(f"{counts['failed_requests']} request(s) failed after their retries (api_error): recorded in "
                  f"{retry_file}; the next run of the workflow retries them (and only them)")
    return counts


@contextlib.contextmanager
def judge_endpoint(judge: dict, judge_model_dir: str | None, log_path: Path):
    """(base_url, settings overrides): the configured endpoint, or a local server for the demo judge
    started for this job. A served model is requested by the name the server knows it by, and cached
    under the config's name plus a hash of its weights, so a retrained judge is never served stale."""
    judge = section_defaults("judge", judge)
    if judge["base_url"] is not None:
        yield judge["base_url"], {}
        return
    from mlit.judge.demo_server import serve

    weights = sorted(Path(judge_model_dir).glob("*.safetensors"))
    digest = hashlib.sha256("".join(sha256_file(w) for w in weights).encode()).hexdigest()[:12]
    with serve(judge_model_dir, log_path) as base_url:
        yield base_url, {"served_model": str(judge_model_dir), "model": f"{judge['model']}@{digest}"}
