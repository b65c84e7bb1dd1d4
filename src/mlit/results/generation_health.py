"""The ``generation_health`` table: per cell x language, the prompts that did not fit the model's
context less the answer budget and what generation did with them (``generation.long_prompts``; the
records are the answer rows' ``long_prompts``, see ``mlit.generate.prompt_budget``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mlit.files import read_jsonl

GENERATION_HEALTH_SCHEMA = {"cell": pl.String, "lang": pl.String, "questions": pl.Int64,
                            "prompts_over_budget": pl.Int64, "shrunk": pl.Int64, "cut": pl.Int64,
                            "smallest_answer_budget": pl.Int64, "most_tokens_cut": pl.Int64, "questions_affected": pl.String}


def generation_health(answer_files: list[str]) -> pl.DataFrame:
    """One row per answers file (``answers/<cell>/<lang>.jsonl``). Files written before the records
    existed have null counts (unknown), not zeros."""
    records = []
    for path in answer_files:
        rows = read_jsonl(path)
        known = all("long_prompts" in row for row in rows)
        events = [(row["question_id"], event) for row in rows for event in row.get("long_prompts") or []]
        budgets = [e["answer_budget"] for _, e in events if e.get("answer_budget") is not None]
        cuts = [e["cut_tokens"] for _, e in events if e.get("cut_tokens")]
        records.append({
            "cell": Path(path).parent.name, "lang": Path(path).stem, "questions": len(rows),
            "prompts_over_budget": len(events) if known else None,
            "shrunk": sum(e["action"] == "shrink" for _, e in events) if known else None,
            "cut": sum(e["action"] == "cut" for _, e in events) if known else None,
            "smallest_answer_budget": min(budgets) if budgets else None,
            "most_tokens_cut": max(cuts) if cuts else None,
            "questions_affected": ", ".join(f"{qid} (turn {e['turn']}, {e['action']})" for qid, e in events) or None,
        })
    return pl.DataFrame(records, schema=GENERATION_HEALTH_SCHEMA).sort(["cell", "lang"])


def report_lines(table: pl.DataFrame) -> list[str]:
    """The tables' README section: every prompt over the budget, by cell and language."""
    over = table.filter(pl.col("prompts_over_budget") > 0)
    unknown = table.filter(pl.col("prompts_over_budget").is_null())
    lines = []
    if over.height:
        lines += [f"**Prompts longer than the context less the answer budget**: {over['prompts_over_budget'].sum()} "
                  "(generation.long_prompts; see generation_health):", ""]
        lines += [f"- {row['cell']}, {row['lang']}: {row['questions_affected']}" for row in over.iter_rows(named=True)]
        lines.append("")
    if unknown.height:
        lines += [f"{unknown.height} answers file(s) predate the prompt-length records (generation_health: null).", ""]
    return lines
