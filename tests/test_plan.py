"""`snakemake plan`: tokens, steps and FLOPs against a hand computation, MoE active parameters, runtime
flags, and measured throughput replacing the assumed one."""

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import BENCH, LANGS, REPO, snakemake
from conftest import demo_config as conftest_demo_config
from mlit.config import Grid
from mlit.files import write_jsonl
from mlit.plan import cost
from mlit.plan.grid import make_plan
from mlit.plan.params import shape_from_config, shape_of_model_dir
from mlit.plan.tokens import count_tokens

ROWS = [
    {"id": "1", "lang": "EN", "messages": [{"role": "user", "content": "Name a colour."},
                                           {"role": "assistant", "content": "Blue."}]},
    {"id": "2", "lang": "DE", "messages": [{"role": "user", "content": "Nenne eine Farbe, bitte."},
                                           {"role": "assistant", "content": "Grün ist eine Farbe."}]},
    {"id": "3", "lang": "EN", "messages": [{"role": "user", "content": "Tell me a long story."},
                                           {"role": "assistant", "content": "Once upon a time there was a king. " * 20}]},
    {"id": "4", "lang": "DE", "messages": [{"role": "user", "content": "Wie heißt die Hauptstadt?"},
                                           {"role": "assistant", "content": "Berlin."}]},
    {"id": "5", "lang": "EN", "messages": [{"role": "user", "content": "Count to three."},
                                           {"role": "assistant", "content": "One, two, three."}]},
]


@pytest.fixture(scope="module")
def prepared_tiny(tiny_base_model, tmp_path_factory):
    """The demo's tiny model prepared as the workflow prepares it (opengptx format, system messages)."""
    from mlit.model.base import prepare, sample_texts

    out = tmp_path_factory.mktemp("plan") / "tiny"
    prepare({"name": "tiny", "source": str(tiny_base_model), "chat_template": "opengptx",
             "chat_template_key": "chat_template", "trust_remote_code": False}, sample_texts(BENCH, LANGS), out)
    return out


def hand_lengths(base, max_length):
    """Each row rendered by hand: the system message of its language first, then the chat template."""
    from transformers import AutoTokenizer

    from mlit.model.chat_format import OPENGPTX_SYSTEM_MESSAGES

    tokenizer = AutoTokenizer.from_pretrained(base)
    full = [len(tokenizer.apply_chat_template([{"role": "system", "content": OPENGPTX_SYSTEM_MESSAGES[row["lang"]]},
                                               *row["messages"]], tokenize=True, return_dict=True)["input_ids"])
            for row in ROWS]
    return full, [min(length, max_length) for length in full]


def test_tokens_steps_and_flops_equal_a_hand_computation(prepared_tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    write_jsonl(tmp_path / "train.jsonl", ROWS)
    full, lengths = hand_lengths(prepared_tiny, 128)
    assert max(full) > 128 > max(n for n in full if n != max(full))  # the long row is cut, the others are not
    counted = count_tokens(tmp_path / "train.jsonl", prepared_tiny, 128, "own_language")
    assert (counted.examples, counted.tokens, counted.squared_lengths, counted.truncated_examples) == \
        (5, sum(lengths), sum(n * n for n in lengths), 1)
    assert counted.source == "counted"

    # 3 epochs of ceil(5 / 2) = 3 steps; max_steps wins
    assert cost.optimizer_steps(5, 2, 3) == 9 and cost.optimizer_steps(5, 2, 3, max_steps=4) == 4
    shape = shape_of_model_dir(prepared_tiny)
    model = AutoModelForCausalLM.from_pretrained(prepared_tiny)
    parameters = sum(p.numel() for p in model.parameters())
    config = model.config
    assert shape.total == shape.active == parameters and shape.dtype_bytes == 4
    assert (shape.layers, shape.attention_width) == (config.num_hidden_layers, config.hidden_size)
    flops = cost.training_flops(shape.active, 3 * counted.tokens, 3 * counted.squared_lengths, shape.layers,
                                shape.attention_width)
    hand = 6 * parameters * 3 * sum(lengths) + 12 * config.num_hidden_layers * config.hidden_size * \
        3 * sum(n * n for n in lengths)
    assert flops == pytest.approx(hand, rel=1e-12)
    assert torch.is_tensor(next(model.parameters()))


def test_counted_tokens_are_the_tokens_training_sees(prepared_tiny, tmp_path):
    """TRL's own count of what it trained on (train_info.json tokens_seen) equals the plan's count."""
    from mlit.train.sft import train

    write_jsonl(tmp_path / "train.jsonl", ROWS)
    settings = {"learning_rate": 1e-3, "num_train_epochs": 2, "per_device_train_batch_size": 2,
                "effective_batch_size": 2, "max_length": 128, "logging_steps": 1, "save_steps": 100}
    info = train(str(prepared_tiny), str(tmp_path / "train.jsonl"), tmp_path / "model", settings, seed=1)
    counted = count_tokens(tmp_path / "train.jsonl", prepared_tiny, 128, "own_language")
    assert info["tokens_seen"] == 2 * counted.tokens
    assert info["global_steps"] == cost.optimizer_steps(5, 2, 2) == 6
    assert 0 < info["train_runtime_s"] <= info["wall_time_s"]


def test_moe_counts_the_experts_a_token_uses():
    from transformers import MixtralConfig, MixtralForCausalLM

    fields = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "vocab_size": 1000,
              "tie_word_embeddings": False}
    shape = shape_from_config({"model_type": "mixtral", **fields}, "test")
    total = sum(p.numel() for p in MixtralForCausalLM(MixtralConfig(**fields)).parameters())
    experts = 2 * 4 * 3 * 64 * 128  # layers x experts x (gate, up, down) x hidden x intermediate
    assert shape.total == total and shape.expert == experts
    assert shape.active == total - experts + experts * 2 // 4
    # Mixtral-8x7B's published shape: 46.7B parameters, 12.9B active per token
    mixtral = shape_from_config({"model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
                                 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                                 "vocab_size": 32000, "num_local_experts": 8, "num_experts_per_tok": 2}, "mixtral")
    assert round(mixtral.total / 1e9, 1) == 46.7 and round(mixtral.active / 1e9, 1) == 12.9


def demo_config(**plan) -> dict:
    config = conftest_demo_config()
    config["plan"] = {**config.get("plan", {}), **plan}
    return config


def test_communication_time_equals_a_hand_computation():
    n, gb = 1_000_000_000, 1e9  # one billion parameters: 2 GB of bf16 weights or gradients
    # one node of 8 GPUs, ZeRO-3: 3 transfers of 2 GB per micro-batch, 7/8 of each per GPU, at 350 GB/s
    assert cost.communication_seconds(n, 8, 3, micro_batches=2, steps=1, nodes=1, hpz_partition_size=1,
                                      inter_node_GBps=40, intra_node_GBps=350) == pytest.approx(2 * 3 * 2 * gb * 7 / 8 / (350 * gb))
    # two nodes of 8: all 6 transfers of the step cross the nodes at 40 GB/s
    plain = cost.communication_seconds(n, 16, 3, 2, 1, 2, 1, 40, 350)
    assert plain == pytest.approx(6 * 2 * gb * 15 / 16 / (40 * gb))
    # ZeRO++ hpZ over 8 GPUs: the step's first gather and the 2 reduce-scatters cross; 3 gathers stay in the node
    hpz = cost.communication_seconds(n, 16, 3, 2, 1, 2, 8, 40, 350)
    assert hpz == pytest.approx(3 * 2 * gb * 15 / 16 / (40 * gb) + 3 * 2 * gb * 7 / 8 / (350 * gb))
    # ZeRO-2 ignores hpZ (weights are not partitioned): its gradients' reduce per micro-batch
    assert cost.communication_seconds(n, 16, 2, 2, 1, 2, 8, 40, 350) == pytest.approx(2 * 2 * gb * 15 / 16 / (40 * gb))
    assert cost.hpz_partition_size(REPO / "config" / "deepspeed" / "zero3_mixtral.json") == 8
    assert cost.hpz_partition_size(REPO / "config" / "deepspeed" / "zero3.json") == cost.hpz_partition_size(None) == 1


def test_a_cell_over_its_runtime_is_flagged(tmp_path):
    config = demo_config(startup_minutes=15)
    config["launch"]["resources"]["train"]["runtime"] = 30
    config["base_models"][0]["launch"] = {"resources": {"train": {"runtime": 20}}}
    slow = make_plan(Grid(copy.deepcopy(config), repo_root=REPO), tmp_path)
    # 15 min start-up + the compute of each cell: the biggest cells exceed 20 min, the smallest do not
    flagged = {row["cell"]: row["over_limit"] for row in slow.train}
    walls = {row["cell"]: row["wall_h"] * 60 for row in slow.train}
    assert all(flag == (walls[cell] > 20) for cell, flag in flagged.items())
    assert flagged["tiny-llama__demo__ENDEFRITES__160__seed1"] and not flagged["tiny-llama__demo__EN__40__seed1"]
    assert slow.totals["over_limit"] == [cell for cell, flag in flagged.items() if flag]
    config["base_models"][0]["launch"] = {"resources": {"train": {"runtime": 120}}}
    assert not any(row["over_limit"] for row in make_plan(Grid(config, repo_root=REPO), tmp_path).train)


def fabricate_train_info(results: Path, cell: str, tokens: int, wall: float, loop: float, world: int = 1) -> None:
    path = results / "models" / cell / "train_info.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"tokens_seen": tokens, "wall_time_s": wall, "train_runtime_s": loop,
                                "world_size": world, "global_steps": 10, "resumed_from_step": None}))


def test_measured_throughput_replaces_the_assumed_one(tmp_path):
    results = tmp_path / "results"
    config = demo_config()
    before = {row["cell"]: row for row in make_plan(Grid(copy.deepcopy(config), repo_root=REPO), results).train}
    assert {row["wall_from"] for row in before.values()} == {"assumed throughput"}

    # one finished cell: tokens / training-loop seconds, overhead = wall - loop
    fabricate_train_info(results, "tiny-llama__demo__EN__40__seed1", tokens=10_000, wall=70.0, loop=50.0)
    after = make_plan(Grid(copy.deepcopy(config), repo_root=REPO), results)
    assert after.throughput == [{"base_model": "tiny-llama", "world_size": 1, "cells": 1, "tokens_per_s": 200.0,
                                 "overhead_s": 20.0, "from": "training-loop throughput"}]
    row = next(r for r in after.train if r["cell"] == "tiny-llama__demo__DE__160__seed1")
    assert row["wall_from"] == "measured throughput"
    assert row["wall_h"] * 3600 == pytest.approx(20.0 + row["tokens"] / 200.0)
    assert row["wall_h_assumed"] == pytest.approx(before[row["cell"]]["wall_h"])
    finished = next(r for r in after.train if r["cell"] == "tiny-llama__demo__EN__40__seed1")
    assert (finished["status"], finished["measured_tokens"], finished["measured_wall_h"] * 3600) == \
        ("finished", 10_000, 70.0)

    # two finished cells of different sizes: a line through them (overhead 30 s, 250 tokens/s)
    fabricate_train_info(results, "tiny-llama__demo__EN__160__seed1", tokens=40_000, wall=190.0, loop=150.0)
    line = make_plan(Grid(copy.deepcopy(config), repo_root=REPO), results).throughput[0]
    assert line["from"] == "line through the finished cells"
    assert (line["tokens_per_s"], line["overhead_s"]) == (pytest.approx(250.0), pytest.approx(30.0))


def test_the_paper_grid_plans_without_its_checkpoints_or_data(tmp_path):
    """Neither the 7B checkpoint nor Mixtral nor the hub datasets are here: parameters come from
    plan.models.<name>.architecture and tokens from the assumed mean lengths, and the plan says so."""
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    plan = make_plan(Grid(config, repo_root=REPO, dry_run=True), tmp_path)
    assert len(plan.train) == len(plan.generate) == len(plan.judge) == 72
    mixtral = next(r for r in plan.train if r["cell"] == "mixtral-8x7b__bactrian_x__ENDEFRITES__full__seed42")
    per_step = config["training"]["effective_batch_size"]  # FastChat's 128
    assert mixtral["examples"] == 5 * 67017 and mixtral["optimizer_steps"] == 3 * math.ceil(5 * 67017 / per_step)
    assert mixtral["token_source"] == "estimated: examples x 250 assumed tokens"
    assert mixtral["parameter_source"].startswith("plan.models.mixtral-8x7b.architecture")
    # two nodes of ZeRO-3 on a 46.7B model: the weights' traffic, not the FLOPs, sets the time; its preset's ZeRO++
    # hierarchical partitioning (8 GPUs per node) keeps every weight gather but each step's first within a node
    compute_h = mixtral["flops"] / (16 * 989e12 * 0.15) / 3600
    assert mixtral["zero_stage"] == 3 and mixtral["hpz_partition_size"] == 8
    assert compute_h < mixtral["communication_h"] < 24 and not mixtral["over_limit"]
    # on plain ZeRO-3 every gather crosses the nodes: twice the traffic across them (6 transfers of 2 B/param per
    # step of 2 micro-batches instead of 3), and the cell runs over its 24 h
    [mixtral_model] = [m for m in config["base_models"] if m["name"] == "mixtral-8x7b"]
    mixtral_model["launch"]["training"]["deepspeed"] = "zero3"
    plain = next(r for r in make_plan(Grid(config, repo_root=REPO, dry_run=True), tmp_path).train
                 if r["cell"] == mixtral["cell"])
    assert plain["hpz_partition_size"] == 1 and plain["over_limit"]
    assert plain["communication_h"] > 1.5 * mixtral["communication_h"]
    assert not any(r["over_limit"] for r in plan.train if r["base_model"] == "24eu-7b")
    assert plan.judge[0]["requests"] == 80 * 5 * 2 and plan.judge[0]["dollars"] < plan.judge[0]["dollars_at_most"]
    assert any("ASSUMED" in line for line in plan.assumptions)


@pytest.mark.slow
def test_snakemake_plan_on_the_demo_counts_the_prepared_data(tmp_path):
    """The real target: prepares the demo's data and tiny model (no training), then counts."""
    result = snakemake(tmp_path, "--cores", "2", "plan")
    assert "GPU-hours" in result.stdout + result.stderr
    import polars as pl

    frame = pl.read_csv(tmp_path / "results" / "plan" / "plan.csv")
    train = frame.filter(pl.col("step") == "train")
    assert train.height == 8 and set(train["token_source"]) == {"counted"}
    assert not (tmp_path / "results" / "models").exists()  # nothing was trained
    assert "## Assumptions" in (tmp_path / "results" / "plan" / "plan.md").read_text()


def test_a_judged_cell_shows_the_dollars_the_judge_reported(tmp_path):
    results = tmp_path / "results"
    config = demo_config()
    config["launch"]["judge"]["prices_per_1k"] = {"prompt_per_1k": 0.03, "completion_per_1k": 0.06}
    cell = "tiny-llama__demo__DE__40__seed1"
    for index, lang in enumerate(config["eval_languages"]):
        write_jsonl(results / "judgments" / cell / f"{lang}.jsonl",
                    [{"usage": {"prompt_tokens": 1000, "completion_tokens": 100}},
                     {"usage": None}, {"usage": {"prompt_tokens": 500 * index, "completion_tokens": 0}}])
    rows = {row["cell"]: row for row in make_plan(Grid(config, repo_root=REPO), results).judge}
    prompt, completion = 5 * 1000 + 500 * (0 + 1 + 2 + 3 + 4), 5 * 100
    assert rows[cell]["measured_dollars"] == pytest.approx(prompt * 0.03 / 1000 + completion * 0.06 / 1000)
    assert rows["tiny-llama__demo__EN__40__seed1"]["measured_dollars"] is None  # not judged yet
    assert rows[cell]["requests"] == 5 * 8 * 5 * 2  # 5 questions x 8 categories x 5 languages x 2 turns
