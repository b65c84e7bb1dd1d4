"""The plan of a grid: one row per training, generation and judge cell, planned and (where a cell has
run) measured, with the assumptions it rests on.

Inputs, best first: the prepared data (``results/data/<data_id>/train.jsonl``) and prepared base model
(``results/base_models/<name>``: tokenizer, chat template, config.json) give counted tokens and
parameters; a checkpoint's config.json elsewhere, or ``plan.models.<name>.architecture``, gives the
parameters; without data, the grid's example count x ``plan.datasets.<name>.tokens_per_example`` (or
``plan.tokens_per_example``) gives an estimate. Every row says which (``token_source``,
``parameter_source``). Finished cells' ``train_info.json`` give the measured throughput per base model and
world size, which then replaces the assumed one for the cells still to run.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from mlit.cluster_requests import job_resources
from mlit.langs import parse_composition
from mlit.plan import cost
from mlit.plan.params import ModelShape, ModelShapeError, shape_from_config, shape_of_model_dir
from mlit.plan.tokens import (TokenCount, count_tokens, estimate_from_characters, estimate_from_examples,
                              manifest_examples)
from mlit.settings import deepspeed_path


@dataclass
class Plan:
    train: list[dict]
    generate: list[dict]
    judge: list[dict]
    throughput: list[dict]
    assumptions: list[str]
    totals: dict = field(default_factory=dict)


# --- inputs -------------------------------------------------------------------------------------------

def model_shape(grid, name: str, results: Path) -> ModelShape:
    """Parameters of base model ``name``: from the prepared base model's config.json, the checkpoint's,
    or ``plan.models.<name>.architecture``."""
    trust = bool(grid.base_models[name].get("trust_remote_code"))
    for directory in (results / "base_models" / name, Path(grid.model_source(name, str(results)))):
        if (directory / "config.json").exists():
            return shape_of_model_dir(directory, trust)
    architecture = grid.config["plan"]["models"].get(name, {}).get("architecture")
    if architecture:
        return shape_from_config(architecture, f"plan.models.{name}.architecture (assumed: the checkpoint is not here)")
    build = grid.base_models[name].get("build")
    if build:  # the tiny model's builder: a Llama of these sizes (vocabulary: at most build.vocab_size)
        fields = {key: value for key, value in build.items() if key != "seed"}
        return shape_from_config({"model_type": "llama", "tie_word_embeddings": True, **fields},
                                 f"base_models[{name}].build (not built yet; vocabulary at most vocab_size)")
    raise ModelShapeError(
        f"base model {name}: no config.json at {results / 'base_models' / name} or {grid.model_source(name)}, "
        f"and no plan.models.{name}.architecture; prepare the base model, or give its config.json fields there")


def grid_examples(grid, data_id: str) -> int | None:
    """Training rows of a data cell from the config alone: size (or the dataset's items) per language,
    times the composition's languages unless sampled."""
    cell = grid.data_cells[data_id]
    items = cell.size if cell.size != "full" else grid.dataset_items[cell.dataset]
    if items is None:
        return None
    composition = parse_composition(cell.composition)
    return int(items) * (1 if composition.sampled else len(composition.languages))


def cell_tokens(grid, cell, results: Path, max_length: int, system_message: str) -> TokenCount:
    data = results / "data" / cell.data.data_id / "train.jsonl"
    base = results / "base_models" / cell.base_model
    if data.exists() and (base / "tokenizer_config.json").exists():
        return count_tokens(data, base, max_length, system_message)
    if data.exists():
        return estimate_from_characters(data, max_length)
    examples = manifest_examples(data) or grid_examples(grid, cell.data.data_id)
    if examples is None:
        raise ModelShapeError(f"data cell {cell.data.data_id}: not prepared and its size is not known from the "
                              f"config; set datasets.{cell.data.dataset}.num_examples")
    plan = grid.config["plan"]
    per_example = plan["datasets"].get(cell.data.dataset, {}).get("tokens_per_example", plan["tokens_per_example"])
    return estimate_from_examples(examples, per_example, max_length)


# --- measured -------------------------------------------------------------------------------------------

def read_train_info(results: Path, cell_id: str) -> dict | None:
    path = results / "models" / cell_id / "train_info.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete the model directory to retrain it") from None


def session_tokens(info: dict) -> float:
    """Tokens this process trained on (after a resume: the share of steps since the resume)."""
    steps = info.get("global_steps") or 0
    resumed = info.get("resumed_from_step") or 0
    if not steps:
        return 0.0
    return info["tokens_seen"] * (steps - resumed) / steps


def measured_throughput(infos: dict[str, dict], model_of: dict[str, str]) -> dict[tuple[str, int], dict]:
    """Per (base model, world size), from its finished cells: wall time = overhead + tokens / tokens_per_s.
    With two or more different token counts, a least-squares line through (tokens, wall_time_s) gives
    both (the overhead then also holds what grows with the run but not with its tokens, e.g. a first
    step's warm-up); with one, tokens / training-loop seconds and the median of wall time - loop time."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for cell_id, info in infos.items():
        groups.setdefault((model_of[cell_id], int(info.get("world_size") or 1)), []).append(info)
    measured = {}
    for key, group in groups.items():
        tokens = [session_tokens(info) for info in group]
        walls = [float(info["wall_time_s"]) for info in group]
        loops = [float(info.get("train_runtime_s") or info["wall_time_s"]) for info in group]
        if sum(tokens) <= 0 or sum(loops) <= 0:
            continue
        fit = None
        if len(set(tokens)) >= 2:
            slope, intercept = statistics.linear_regression(tokens, walls)
            if slope > 0 and intercept >= 0:
                fit = {"tokens_per_s": 1 / slope, "overhead_s": intercept, "from": "line through the finished cells"}
        if fit is None:
            fit = {"tokens_per_s": sum(tokens) / sum(loops),
                   "overhead_s": statistics.median(wall - loop for wall, loop in zip(walls, loops)),
                   "from": "training-loop throughput"}
        measured[key] = {"base_model": key[0], "world_size": key[1], "cells": len(group), **fit}
    return measured


# --- the plan -----------------------------------------------------------------------------------------

def gpu_of(grid, name: str) -> tuple[str, dict, float]:
    plan = grid.config["plan"]
    override = plan["models"].get(name, {})
    gpu_type = override.get("gpu_type", plan["gpu_type"])
    if gpu_type not in plan["gpu_types"]:
        raise ModelShapeError(f"plan.gpu_type: '{gpu_type}' (base model {name}) is not in plan.gpu_types "
                              f"({sorted(plan['gpu_types'])}); add it with its peak_tflops")
    return gpu_type, plan["gpu_types"][gpu_type], override.get("mfu", plan["mfu"])


def train_rows(grid, results: Path, measured: dict, infos: dict) -> list[dict]:
    plan = grid.config["plan"]
    shapes = {name: model_shape(grid, name, results) for name in grid.base_models}
    rows = []
    for cell_id, cell in grid.cells.items():
        name = cell.base_model
        settings = grid.training_settings(name)
        shape = shapes[name]
        gpu_type, gpu, mfu = gpu_of(grid, name)
        world = int(settings["nodes"]) * grid.processes_per_node(name)
        devices = int(settings["nodes"]) * max(int(settings["gpus_per_node"]), 1)
        counted = cell_tokens(grid, cell, results, int(settings["max_length"]), settings["system_message"])
        batch = int(settings["effective_batch_size"])
        steps = cost.optimizer_steps(counted.examples, batch, settings["num_train_epochs"], settings["max_steps"])
        epochs = cost.epochs_trained(counted.examples, batch, settings["num_train_epochs"], settings["max_steps"])
        tokens = counted.tokens * epochs
        flops = cost.training_flops(shape.active, tokens, counted.squared_lengths * epochs, shape.layers,
                                    shape.attention_width)
        micro_batches = math.ceil(counted.examples * epochs / (int(settings["per_device_train_batch_size"]) * world))
        deepspeed_file = deepspeed_path(settings["deepspeed"], grid.repo_root)  # both read the file the job uses
        stage = cost.zero_stage(str(deepspeed_file) if deepspeed_file else None)
        hpz = cost.hpz_partition_size(deepspeed_file)
        communication_s = cost.communication_seconds(shape.total, world, stage, micro_batches, steps,
                                                     int(settings["nodes"]), hpz, plan["inter_node_GBps"],
                                                     gpu.get("intra_node_GBps"))
        assumed_s = cost.wall_seconds_assumed(flops, devices, gpu["peak_tflops"], mfu, plan["startup_minutes"] * 60,
                                              communication_s)
        rate = measured.get((name, world))
        wall = cost.wall_seconds_measured(tokens, rate["tokens_per_s"], rate["overhead_s"]) if rate else assumed_s
        limit_min = job_resources(grid.config, "train", name)["runtime"]
        bf16 = settings["bf16"] if settings["bf16"] is not None else gpu.get("bf16", True)
        info = infos.get(cell_id)
        rows.append({
            "cell": cell_id, "base_model": name, "data_id": cell.data.data_id, "examples": counted.examples,
            "tokens_per_epoch": counted.tokens, "epochs": round(epochs, 4), "tokens": round(tokens),
            "truncated_examples": counted.truncated_examples, "token_source": counted.source,
            "effective_batch": batch, "optimizer_steps": steps,
            "parameters": shape.total, "active_parameters": shape.active, "parameter_source": shape.source,
            "flops": flops, "gpu_type": gpu_type, "gpus": devices, "world_size": world, "mfu_assumed": mfu,
            "zero_stage": stage, "hpz_partition_size": hpz, "communication_h": communication_s / 3600, "wall_h_assumed": assumed_s / 3600,
            "wall_h": wall / 3600, "wall_from": "measured throughput" if rate else "assumed throughput",
            "gpu_hours": wall / 3600 * devices, "runtime_limit_h": limit_min / 60,
            "over_limit": wall / 60 > limit_min,
            "checkpoint_gb": cost.checkpoint_bytes(shape.total, bf16) / 1e9,
            "peak_checkpoint_disk_gb": cost.peak_checkpoint_bytes(shape.total, bf16, int(settings["save_total_limit"])) / 1e9,
            "model_gb": shape.total * shape.dtype_bytes / 1e9,
            "status": "finished" if info else "to run",
            "measured_tokens": info.get("tokens_seen") if info else None,
            "measured_steps": info.get("global_steps") if info else None,
            "measured_wall_h": info["wall_time_s"] / 3600 if info else None,
        })
    return rows


def questions_per_lang(grid) -> dict[str, list[dict]]:
    from mlit.data.mtbench import load_questions

    per_category = grid.config["generation"]["questions_per_category"]
    return {lang: load_questions(grid.benchmark_dir(), lang, per_category) for lang in grid.eval_languages}


def generate_rows(grid, questions: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for cell_id, cell in grid.cells.items():
        settings = grid.generation_settings(cell.base_model)
        prompts = sum(len(q) for q in questions.values()) * 2  # two turns per question
        rows.append({"cell": cell_id, "base_model": cell.base_model, "prompts": prompts,
                     "max_new_tokens": settings["max_new_tokens"],
                     "answer_token_budget": prompts * settings["max_new_tokens"]})
    return rows


def judge_request_chars(grid, questions: dict[str, list[dict]]) -> tuple[int, int]:
    """Requests per cell (one per question and turn) and their characters with empty answers."""
    from mlit.data.mtbench import load_judge_prompts, load_references
    from mlit.judge.prompts import build_requests

    empty = {"choices": [{"turns": ["", ""]}]}
    requests = chars = 0
    for lang, selected in questions.items():
        prompts = load_judge_prompts(grid.benchmark_dir(), lang)
        references = load_references(grid.benchmark_dir(), lang)
        for question in selected:
            for request in build_requests(question, empty, prompts, references.get(question["question_id"])):
                requests += 1
                chars += len(request.system_prompt) + len(request.user_prompt)
    return requests, chars


def measured_judge(results: Path, cell_id: str, langs: list[str]) -> dict | None:
    """Tokens the judge reported (``usage``) over a finished cell's judgments."""
    from mlit.files import read_jsonl

    paths = [results / "judgments" / cell_id / f"{lang}.jsonl" for lang in langs]
    if not all(path.exists() for path in paths):
        return None
    prompt = completion = 0
    for path in paths:
        for row in read_jsonl(path):
            usage = row.get("usage") or {}
            prompt += usage.get("prompt_tokens", 0)
            completion += usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def judge_rows(grid, questions: dict[str, list[dict]], results: Path) -> list[dict]:
    from mlit.judge.client import judge_cost

    judge = grid.judge_settings()
    requests, chars = judge_request_chars(grid, questions)
    samples = int(judge["samples"])
    discount = 0.5 if judge["mode"] == "batch" else 1.0  # the Batch API's price, as the judge's dry run
    rows = []
    for cell_id, cell in grid.cells.items():
        max_new = grid.generation_settings(cell.base_model)["max_new_tokens"]
        answer_tokens = min(grid.config["plan"]["answer_tokens"], max_new)
        answers_quoted = requests // 2 * 3  # turn 1 quotes one answer, turn 2 both
        prompt_tokens = samples * cost.judge_prompt_tokens(chars, answers_quoted, answer_tokens)
        prompt_most = samples * cost.judge_prompt_tokens(chars, answers_quoted, max_new)
        sent = requests * samples

        def dollars(prompt, completion):
            value = judge_cost(prompt, completion, judge["prices_per_1k"])
            return None if value is None else value * discount

        spent = measured_judge(results, cell_id, grid.eval_languages)
        rows.append({"cell": cell_id, "requests": sent, "prompt_tokens": prompt_tokens,
                     "dollars": dollars(prompt_tokens, cost.TYPICAL_JUDGMENT_TOKENS * sent),
                     "dollars_at_most": dollars(prompt_most, int(judge["max_tokens"]) * sent),
                     "measured_dollars": dollars(spent["prompt_tokens"], spent["completion_tokens"]) if spent else None})
    return rows


def peak_disk(rows: list[dict], concurrent: int | None) -> dict:
    """Checkpoints of the largest ``concurrent`` training cells running at once, plus every published
    model (they stay)."""
    running = sorted((row["peak_checkpoint_disk_gb"] for row in rows), reverse=True)[:concurrent or len(rows)]
    published = sum(row["model_gb"] for row in rows)
    return {"concurrent_trainings": concurrent or len(rows), "checkpoints_gb": sum(running),
            "published_models_gb": published, "peak_gb": sum(running) + published}


def assumptions(grid, plan_rows: list[dict], measured: dict) -> list[str]:
    plan = grid.config["plan"]
    lines = []
    for name in grid.base_models:
        gpu_type, gpu, mfu = gpu_of(grid, name)
        rows = [row for row in plan_rows if row["base_model"] == name]
        sources = sorted({row["token_source"] for row in rows})
        lines.append(f"{name}: {gpu_type} at {gpu['peak_tflops']} TFLOP/s peak ({gpu.get('source', 'no source given')}), "
                     f"MFU {mfu} (ASSUMED{'; ' + plan['models'][name]['source'] if plan['models'].get(name, {}).get('source') else ''}); "
                     f"parameters from {rows[0]['parameter_source']}; tokens {', '.join(sources)}")
    lines.append(f"start-up per training job {plan['startup_minutes']} min (ASSUMED) until a cell has run; then the measured "
                 "overhead and tokens/s of the same base model and world size replace both (throughput table)")
    lines.append("FLOPs: 6 x active parameters x tokens + 12 x layers x attention width x sum of squared lengths "
                 "(PaLM's MFU accounting; activation recomputation not counted)")
    lines.append(f"communication: bf16 weights and gradients per micro-batch (ZeRO-3: 3 x 2 B/param, ZeRO-1/2: 2 B/param; "
                 f"data parallel: 4 B/param per step) at intra_node_GBps of the GPU type on one node, "
                 f"{plan['inter_node_GBps']} GB/s per GPU across nodes (ASSUMED); with ZeRO++ hierarchical "
                 "partitioning (zero_hpz_partition_size, several nodes) only each step's first weight gather and the "
                 "gradients' reduce-scatter cross the nodes, the other gathers stay within one; overlapped with "
                 "compute, so the wall time is the longer of the two")
    lines.append("checkpoint: bf16 weights 2 B/param + fp32 master and Adam moments 12 B/param (fp32 training: 4 + 8), "
                 "save_total_limit + 1 of them at once per running cell")
    lines.append(f"judge: prompt characters / 4 + quoted answers of {plan['answer_tokens']} tokens (ASSUMED, at most "
                 f"max_new_tokens), {cost.TYPICAL_JUDGMENT_TOKENS} completion tokens per judgment (typical); "
                 "at most: answers of max_new_tokens, judgments of judge.max_tokens")
    if not measured:
        lines.append("no cell has finished training: every wall time is from the assumed throughput")
    return lines


def make_plan(grid, results: str | Path = "results") -> Plan:
    results = Path(results)
    infos = {cell_id: info for cell_id in grid.cells if (info := read_train_info(results, cell_id))}
    model_of = {cell_id: cell.base_model for cell_id, cell in grid.cells.items()}
    measured = measured_throughput(infos, model_of)
    train = train_rows(grid, results, measured, infos)
    questions = questions_per_lang(grid)
    generate = generate_rows(grid, questions)
    judge = judge_rows(grid, questions, results)
    plan = Plan(train=train, generate=generate, judge=judge, throughput=list(measured.values()),
                assumptions=assumptions(grid, train, measured))
    plan.totals = totals(train, generate, judge, grid.config["plan"]["concurrent_trainings"])
    return plan


def totals(train: list[dict], generate: list[dict], judge: list[dict], concurrent: int | None) -> dict:
    per_model: dict[str, dict] = {}
    for row in train:
        entry = per_model.setdefault(row["base_model"], {"cells": 0, "gpu_hours": 0.0, "tokens": 0, "flops": 0.0,
                                                         "over_limit": 0})
        entry["cells"] += 1
        entry["gpu_hours"] += row["gpu_hours"]
        entry["tokens"] += row["tokens"]
        entry["flops"] += row["flops"]
        entry["over_limit"] += int(row["over_limit"])
    longest = max(train, key=lambda row: row["wall_h"])
    dollars = [row["dollars"] for row in judge]
    return {"per_model": per_model, "gpu_hours": sum(row["gpu_hours"] for row in train),
            "longest": {"cell": longest["cell"], "wall_h": longest["wall_h"], "limit_h": longest["runtime_limit_h"]},
            "over_limit": [row["cell"] for row in train if row["over_limit"]],
            "disk": peak_disk(train, concurrent),
            "prompts": sum(row["prompts"] for row in generate),
            "answer_token_budget": sum(row["answer_token_budget"] for row in generate),
            "judge_requests": sum(row["requests"] for row in judge),
            "judge_dollars": None if None in dollars else sum(dollars),
            "judge_dollars_at_most": None if None in dollars else sum(row["dollars_at_most"] for row in judge)}
