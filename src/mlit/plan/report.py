"""The plan as files: ``plan.csv`` (one row per cell and step), ``plan.md`` (totals, assumptions, flagged
cells, planned beside measured) and a printed summary."""

from __future__ import annotations

from pathlib import Path

from mlit.files import atomic_write_text
from mlit.plan.grid import Plan


def _num(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "OVER LIMIT" if value else ""
    if isinstance(value, float):
        if abs(value) >= 1e6 or 0 < abs(value) < 1:
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_num(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(plan: Plan) -> str:
    import polars as pl

    frames = [pl.DataFrame([{"step": step, **row} for row in rows], infer_schema_length=None)
              for step, rows in (("train", plan.train), ("generate", plan.generate), ("judge", plan.judge)) if rows]
    return pl.concat(frames, how="diagonal_relaxed").write_csv()


def summary(plan: Plan) -> str:
    t = plan.totals
    lines = [f"training: {len(plan.train)} cells, {t['gpu_hours']:,.1f} GPU-hours"]
    for name, entry in t["per_model"].items():
        lines.append(f"  {name}: {entry['cells']} cells, {entry['gpu_hours']:,.1f} GPU-hours, "
                     f"{entry['tokens']:.3g} tokens, {entry['flops']:.3g} FLOPs, {entry['over_limit']} over their time limit")
    longest = t["longest"]
    lines.append(f"longest cell: {longest['cell']} {longest['wall_h']:,.2f} h (limit {longest['limit_h']:,.2f} h)")
    disk = t["disk"]
    lines.append(f"peak disk: {disk['peak_gb']:,.1f} GB = checkpoints of {disk['concurrent_trainings']} running cells "
                 f"{disk['checkpoints_gb']:,.1f} GB + published models {disk['published_models_gb']:,.1f} GB")
    lines.append(f"generation: {t['prompts']:,} prompts, answer-token budget {t['answer_token_budget']:,}")
    dollars = "no prices (launch.judge.prices_per_1k)" if t["judge_dollars"] is None else \
        f"${t['judge_dollars']:,.2f} (at most ${t['judge_dollars_at_most']:,.2f})"
    lines.append(f"judge: {t['judge_requests']:,} requests, {dollars}")
    if t["over_limit"]:
        lines.append(f"OVER THEIR TIME LIMIT ({len(t['over_limit'])}): " + ", ".join(t["over_limit"]))
    return "\n".join(lines)


TRAIN_COLUMNS = ["cell", "examples", "tokens", "token_source", "optimizer_steps", "flops", "gpus", "wall_h",
                 "wall_from", "gpu_hours", "runtime_limit_h", "over_limit", "peak_checkpoint_disk_gb"]
VERSUS_COLUMNS = ["cell", "tokens", "measured_tokens", "optimizer_steps", "measured_steps", "wall_h_assumed",
                  "wall_h", "measured_wall_h"]


def markdown(plan: Plan) -> str:
    parts = ["# Plan: what the grid costs", "", "```", summary(plan), "```", "", "## Assumptions", ""]
    parts += [f"- {line}" for line in plan.assumptions]
    parts += ["", "## Training cells", "", table(plan.train, TRAIN_COLUMNS)]
    finished = [row for row in plan.train if row["status"] == "finished"]
    if finished:
        parts += ["", "## Planned vs measured (finished cells; wall_h_assumed: the assumed throughput, wall_h: the measured one)", "",
                  table(finished, VERSUS_COLUMNS)]
    if plan.throughput:
        parts += ["", "## Measured throughput (replaces the assumed one for cells still to run)", "",
                  table(plan.throughput, ["base_model", "world_size", "cells", "tokens_per_s", "overhead_s", "from"])]
    parts += ["", "## Generation cells", "",
              table(plan.generate, ["cell", "prompts", "max_new_tokens", "answer_token_budget"]),
              "", "## Judge cells", "",
              table(plan.judge, ["cell", "requests", "prompt_tokens", "dollars", "dollars_at_most", "measured_dollars"]),
              ""]
    return "\n".join(parts)


def write_plan(plan: Plan, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "plan.csv", csv_text(plan))
    atomic_write_text(out_dir / "plan.md", markdown(plan))
