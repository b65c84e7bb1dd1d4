"""Re-judging a reference judgment file: the prompts of a FastChat-format file (``model_judgment/
gpt-4_single.jsonl``: ``question_id, model, judge = [judge model, prompt name], user_prompt, score, turn``)
are sent again, unchanged, to a configured judge, and its ratings are compared with the file's
(``mlit.judges.agreement``), so a candidate judge can be checked on GPT-4's own judgments before a grid
is judged with it.

The requests go through the judge step's client (``mlit.judge.client.judge_all``): each reply is cached
as it arrives, so a rerun (or a killed run started again) pays nothing twice and sends only what is not
cached yet; a request that failed after its retries is a recorded ``api_error``, never a score.
The system prompt is the one of the file's prompt name in the question's language (MT-Bench-X's
``judge_prompts.jsonl``), as FastChat sent it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import polars as pl

from mlit.files import read_jsonl, write_jsonl
from mlit.judge.prompts import JudgeRequest, parse_rating
from mlit.judges.agreement import agreement_table, ratings_frame, write_agreement

LANG_SUFFIX = re.compile(r"_([A-Z]{2})$")  # MT-Bench-X's question ids: 81_EN


class ReferenceFileError(ValueError):
    """A reference judgment file that is not in FastChat's single-answer judgment format."""


def read_reference(path: str | Path, bench_dir: str | Path, lang: str | None = None) -> list[dict]:
    """The file's rows, checked, each with ``lang``, ``category``, ``prompt_name``, ``reference_judge`` and
    ``system_prompt`` added; the language is the question id's suffix (``81_EN``) or ``lang``."""
    from mlit.data.mtbench import load_judge_prompts, load_questions

    rows, categories, prompts = [], {}, {}
    for number, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{number}"
        missing = [name for name in ("question_id", "model", "judge", "user_prompt", "score", "turn") if name not in row]
        if missing:
            raise ReferenceFileError(f"{where}: missing field(s) {missing}; expected FastChat's single-answer "
                                     "judgment format (model_judgment/<judge>_single.jsonl)")
        judge = row["judge"]
        if not (isinstance(judge, list) and len(judge) == 2 and all(isinstance(x, str) for x in judge)):
            raise ReferenceFileError(f"{where}: judge {judge!r} is not [judge model, prompt name]")
        match = LANG_SUFFIX.search(str(row["question_id"]))
        row_lang = lang or row.get("lang") or (match.group(1) if match else None)
        if row_lang is None:
            raise ReferenceFileError(f"{where}: question_id {row['question_id']!r} has no language suffix "
                                     "(81_EN); give the file's language (--lang)")
        if row_lang not in categories:
            categories[row_lang] = {q["question_id"]: q["category"] for q in load_questions(bench_dir, row_lang)}
            prompts[row_lang] = load_judge_prompts(bench_dir, row_lang)
        question_id = str(row["question_id"])
        if question_id not in categories[row_lang]:
            raise ReferenceFileError(f"{where}: question_id {question_id!r} is not an MT-Bench-X {row_lang} "
                                     f"question ({bench_dir})")
        prompt_name = judge[1]
        if prompt_name not in prompts[row_lang] or prompts[row_lang][prompt_name].get("type") != "single":
            raise ReferenceFileError(f"{where}: prompt {prompt_name!r} is not a single-answer judge prompt of "
                                     f"{bench_dir}/{row_lang}/judge_prompts.jsonl")
        score = row["score"]
        failed = score is None and row.get("failure") is not None  # an mlit judgment row's recorded failure
        if not failed and (not isinstance(score, (int, float)) or isinstance(score, bool)
                           or not (score == -1 or 1 <= score <= 10)):
            raise ReferenceFileError(f"{where}: score {score!r} is not a rating 1..10, FastChat's -1 (no rating) "
                                     "or null with a failure (mlit's rows)")
        if int(row["turn"]) not in (1, 2):
            raise ReferenceFileError(f"{where}: turn {row['turn']!r} is not 1 or 2")
        rows.append({**row, "question_id": question_id, "turn": int(row["turn"]), "lang": row_lang,
                     "category": categories[row_lang][question_id], "prompt_name": prompt_name,
                     "reference_judge": judge[0], "system_prompt": prompts[row_lang][prompt_name]["system_prompt"]})
    if not rows:
        raise ReferenceFileError(f"{path}: no judgments")
    return rows


def reference_ratings(rows: list[dict], source: str) -> pl.DataFrame:
    """The file's ratings: FastChat's -1 (a reply without a rating) and mlit's null are failures, not scores."""
    return ratings_frame([{"cell": r["model"], "lang": r["lang"], "question_id": r["question_id"], "turn": r["turn"],
                           "category": r["category"],
                           "score": None if r["score"] is None or r["score"] == -1 else float(r["score"])}
                          for r in rows], source)


def to_send(rows: list[dict], sample: float | None = None, seed: int = 0) -> list[dict]:
    """The rows whose prompt is re-sent: those the reference judge replied to (an mlit row without a
    ``judgment`` holds a rule's score, e.g. an off-language answer rated 1, or a failed request), all of them
    or a stratified ``sample`` (``mlit.judges.sample``: by cell, language, category and turn)."""
    replied = [row for row in rows if row.get("judgment") is not None]
    if sample is None:
        return replied
    from mlit.judges.sample import ITEM, stratified_sample

    items = pl.DataFrame([{"cell": r["model"], "lang": r["lang"], "question_id": r["question_id"], "turn": r["turn"],
                           "category": r["category"]} for r in replied])
    picked = set(stratified_sample(items, sample, seed).select(list(ITEM)).iter_rows())
    return [r for r in replied if (r["model"], r["lang"], r["question_id"], r["turn"]) in picked]


def rejudge(path: str | Path | list, judge: dict, cache_dir: str | Path, out_dir: str | Path, bench_dir: str | Path,
            endpoint: tuple[str, dict] | None = None, lang: str | None = None, n_boot: int = 1000,
            seed: int = 0, sample: float | None = None) -> pl.DataFrame:
    """Re-send the prompts of ``path`` (one file or a list; ``to_send``: those the reference judge replied to, or a stratified
    ``sample`` of them drawn with ``seed``) to ``judge`` (the config's judge section); write
    ``out_dir/judgments.jsonl`` (the new judgments, FastChat's fields plus ``failure``) and
    ``out_dir/agreement.csv`` / ``.md`` (the judge as B against the file as A, on the turns both rated);
    return the table."""
    from mlit.config import section_defaults
    from mlit.judge.step import UNPARSABLE, JudgeEndpointError
    from mlit.judge.client import JudgeCache, JudgeSettings, judge_all, redact_error

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    reference = [row for one in paths for row in read_reference(one, bench_dir, lang)]
    source = ", ".join(map(str, paths))
    rows = to_send(reference, sample, seed)
    skipped = len(reference) - len([r for r in reference if r.get("judgment") is not None])
    if skipped:
        print(f"{skipped} row(s) of {source} have no judgment (a rule's score or a failed request): not re-sent")
    judge = section_defaults("judge", judge)
    base_url, overrides = endpoint or (None, {})
    settings = JudgeSettings.from_config(judge, base_url, **overrides)
    requests = [JudgeRequest(question_id=r["question_id"], turn=r["turn"], category=r["category"],
                             prompt_name=r["prompt_name"], system_prompt=r["system_prompt"],
                             user_prompt=r["user_prompt"]) for r in rows]
    results = judge_all(requests, settings, JudgeCache(cache_dir), desc="rejudge")
    judged = []
    for row, result in zip(rows, results):
        score = parse_rating(result["judgment"]) if result["judgment"] is not None else None
        failure = None if score is not None else (result["failure"] or "unparsable")
        error = None if failure is None else redact_error(result["error"] or UNPARSABLE, settings)
        judged.append({"question_id": row["question_id"], "model": row["model"],
                       "judge": [settings.model, row["prompt_name"]], "user_prompt": row["user_prompt"],
                       "judgment": result["judgment"], "score": score, "turn": row["turn"], "tstamp": time.time(),
                       "category": row["category"], "lang": row["lang"], "prompt_name": row["prompt_name"],
                       "error": error, "failure": failure, "cached": result["cached"], "usage": result["usage"]})
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "judgments.jsonl", judged)
    api_errors = sum(r["failure"] == "api_error" for r in judged)
    print(f"re-judged {len(judged)} judgments of {source} with {settings.model}: "
          f"{sum(r['cached'] for r in judged)} from the cache, {api_errors} API errors, "
          f"{sum(r['failure'] == 'unparsable' for r in judged)} without a rating")
    if api_errors == len(judged):
        raise JudgeEndpointError(f"the judge endpoint {settings.base_url} failed every request, e.g. "
                                 f"{judged[0]['error']}; check judge.base_url, judge.model and the key in "
                                 f"${settings.api_key_env}. Replies received are cached: a rerun sends only the rest.")
    reference_judge = "+".join(sorted({r["reference_judge"] for r in reference}))
    candidate = ratings_frame([{"cell": r["model"], "lang": r["lang"], "question_id": r["question_id"],
                                "turn": r["turn"], "category": r["category"], "score": r["score"]} for r in judged],
                              str(out_dir / "judgments.jsonl"))
    replied = [r for r in reference if r.get("judgment") is not None]
    label = Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} files"
    table = agreement_table(reference_ratings(replied, source), candidate, f"{reference_judge} ({label})",
                            settings.model, n_boot=n_boot, seed=seed)
    write_agreement(table, out_dir / "agreement")
    return table
