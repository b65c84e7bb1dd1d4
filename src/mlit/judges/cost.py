"""What judging a grid costs with two judges: a dear judge (the config's, e.g. GPT-4) on a stratified sample
(``mlit.judges.sample``) plus a second judge (e.g. an open model served with vLLM) on everything, against the
dear judge on everything.

Tokens per judged turn as the plan estimates them (``mlit.plan.cost.judge_prompt_tokens``, per turn and
not rounded, so that the sum over a cell is the plan's): the request's own characters / 4 plus the quoted answers (turn 1 quotes one, turn 2 both) of ``plan.answer_tokens``
(capped at ``generation.max_new_tokens``), and a typical judgment of ``TYPICAL_JUDGMENT_TOKENS``
completion tokens; priced with each judge's ``prices_per_1k`` (the Batch API at half price, as the plan).
A judge without prices has an unknown cost (None), never zero.
"""

from __future__ import annotations

import polars as pl

from mlit.judges.sample import stratified_sample
from mlit.plan.cost import TYPICAL_JUDGMENT_TOKENS


def grid_items(grid) -> pl.DataFrame:
    """One row per judged turn of the grid: ``cell, lang, question_id, turn, category, prompt_tokens,
    completion_tokens`` (each turn of ``judge.samples`` judgments)."""
    from mlit.data.mtbench import load_judge_prompts, load_questions, load_references
    from mlit.judge.prompts import build_requests

    per_category = grid.config["generation"].get("questions_per_category")
    empty = {"choices": [{"turns": ["", ""]}]}
    requests = []  # (lang, question_id, turn, category, characters): the same for every cell
    for lang in grid.eval_languages:
        prompts = load_judge_prompts(grid.benchmark_dir(), lang)
        references = load_references(grid.benchmark_dir(), lang)
        for question in load_questions(grid.benchmark_dir(), lang, per_category):
            for request in build_requests(question, empty, prompts, references.get(question["question_id"])):
                requests.append((lang, request.question_id, request.turn, request.category,
                                 len(request.system_prompt) + len(request.user_prompt)))
    samples = int(grid.config["judge"]["samples"])
    rows = []
    for cell_id, cell in grid.cells.items():
        max_new = grid.generation_settings(cell.base_model)["max_new_tokens"]
        answer_tokens = min(grid.config["plan"]["answer_tokens"], max_new)
        for lang, question_id, turn, category, chars in requests:
            rows.append({"cell": cell_id, "lang": lang, "question_id": question_id, "turn": turn,
                         "category": category,
                         "prompt_tokens": samples * (chars / 4 + turn * answer_tokens),  # turn 2 quotes both
                         "completion_tokens": samples * TYPICAL_JUDGMENT_TOKENS})
    return pl.DataFrame(rows)


def dollars(items: pl.DataFrame, judge: dict) -> float | None:
    """The cost of judging ``items`` with ``judge`` (``prices_per_1k``, ``mode``); None without prices."""
    from mlit.judge.client import judge_cost

    value = judge_cost(float(items["prompt_tokens"].sum()), float(items["completion_tokens"].sum()),
                       judge.get("prices_per_1k"))
    if value is None:
        return None
    return value * (0.5 if judge.get("mode") == "batch" else 1.0)


def two_judge_cost(grid, fraction: float = 0.1, seed: int = 0, second_judge: dict | None = None) -> pl.DataFrame:
    """Rows ``plan, judge, share, requests, prompt_tokens, completion_tokens, dollars``: the config's judge on
    everything; on the stratified sample; the second judge on everything; and the sample plus the second
    judge (``dollars`` None where a judge has no prices)."""
    judge = grid.judge_settings()  # the judge and its launch.judge (prices_per_1k, mode)
    second = second_judge or {"model": "second judge"}
    items = grid_items(grid)
    sample = stratified_sample(items, fraction, seed)

    def row(plan: str, model: str, part: pl.DataFrame, price_of: dict) -> dict:
        return {"plan": plan, "judge": model, "share": round(part.height / items.height, 4), "requests": part.height,
                "prompt_tokens": round(part["prompt_tokens"].sum()),
                "completion_tokens": int(part["completion_tokens"].sum()), "dollars": dollars(part, price_of)}

    everything = row("dear judge on everything", judge["model"], items, judge)
    sampled = row(f"dear judge on a {fraction:.0%} stratified sample", judge["model"], sample, judge)
    second_row = row("second judge on everything", second.get("model", "second judge"), items, second)
    both = {"plan": "sample + second judge on everything", "judge": f"{judge['model']} + {second_row['judge']}",
            "share": None, "requests": sampled["requests"] + second_row["requests"],
            "prompt_tokens": sampled["prompt_tokens"] + second_row["prompt_tokens"],
            "completion_tokens": sampled["completion_tokens"] + second_row["completion_tokens"],
            "dollars": None if sampled["dollars"] is None or second_row["dollars"] is None
            else sampled["dollars"] + second_row["dollars"]}
    schema = {"plan": pl.String, "judge": pl.String, "share": pl.Float64, "requests": pl.Int64,
              "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "dollars": pl.Float64}
    return pl.DataFrame([everything, sampled, second_row, both], schema=schema)
