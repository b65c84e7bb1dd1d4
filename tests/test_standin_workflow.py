"""The study's base checkpoints in shape (tests/standins.py) through the real workflow: prepare, train,
generate (hf; vllm from its own environment), judge (a real local OpenAI-protocol server), tables;
and the Mixtral stand-in under DeepSpeed ZeRO-3 with 2 processes, its loss curve equal to 1 process."""

import copy
import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from mlit.files import read_jsonl, write_jsonl

from conftest import REPO, demo_config, snakemake
from support.scripted_server import OpenAIServer

pytestmark = pytest.mark.slow

DEMO = demo_config()
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CELLS = {"mixtral": "mixtral-like__demo__DE__16__seed1", "remote": "polyglot-like__demo__DE__16__seed1"}


def standin_config(standins, base_url: str) -> dict:
    config = copy.deepcopy(DEMO)
    config.update(compositions=["DE"], sizes=[16], eval_languages=["EN", "DE"], chat_template="opengptx")
    config["base_models"] = [{"name": "mixtral-like", "path": str(standins["mixtral"])},
                             {"name": "polyglot-like", "path": str(standins["remote"]), "trust_remote_code": True}]
    config["training"].update(num_train_epochs=1, effective_batch_size=8, max_length=512)
    config["launch"]["training"].update(per_device_train_batch_size=4, logging_steps=1)
    config["generation"].update(questions_per_category=1, max_new_tokens=12, batch_size=8)
    config["judge"] = {"model": "gpt-4-standin", "base_url": base_url}
    config["launch"]["judge"] = {"api_key_env": "MLIT_STANDIN_KEY", "max_retries": 1, "parallel": 4}
    return config


@pytest.fixture(scope="module")
def standin_run(tmp_path_factory, standins):
    workdir = tmp_path_factory.mktemp("standin_workflow")
    with OpenAIServer() as server:
        configfile = workdir / "config.yaml"
        configfile.write_text(yaml.safe_dump(standin_config(standins, server.base_url)))
        os.environ["MLIT_STANDIN_KEY"] = "sk-standin-secret"
        try:
            snakemake(workdir, "--cores", "2", configfile=configfile)
        finally:
            os.environ.pop("MLIT_STANDIN_KEY")
        requests = len(server.requests)
    return workdir, requests


def test_standins_go_through_prepare_train_generate_judge_and_tables(standin_run):
    workdir, requests = standin_run
    results = workdir / "results"
    for name, cell in CELLS.items():
        base = json.loads((results / "base_models" / cell.split("__")[0] / "mlit_base.json").read_text())
        assert base["chat_format"]["name"] == "opengptx" and base["end_of_turn_token_id"] == 2
        assert (base["tokenizer_conversion"] is not None) == (name == "remote")
        train_log = (results / "logs" / "train" / f"{cell}.log").read_text()
        assert "rendered training example (DE):\n<s>System: Ein Gespräch" in train_log
        info = json.loads((results / "models" / cell / "train_info.json").read_text())
        assert info["examples"] == 16 and info["truncation"]["DE"]["examples"] == 16
        for lang in ("EN", "DE"):
            answers = read_jsonl(results / "answers" / cell / f"{lang}.jsonl")
            assert len(answers) == 8 and all(len(row["choices"][0]["turns"]) == 2 for row in answers)
            log = (results / "logs" / "generate" / f"{cell}.log").read_text()
            assert "rendered prompt of the first DE question:\n<s>System: Ein Gespräch" in log
            judged = read_jsonl(results / "judgments" / cell / f"{lang}.jsonl")
            assert len(judged) == 16 and all(row["score"] == 7 for row in judged)
    assert requests == 2 * 2 * 16  # every turn of every answer judged once
    with open(results / "tables" / "main_table.csv") as handle:
        rows = {row["cell"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(CELLS.values())
    with open(results / "tables" / "training_health.csv") as handle:
        health = list(csv.DictReader(handle))
    assert {(row["cell"], row["lang"]) for row in health} == {(cell, "DE") for cell in CELLS.values()}
    # the fine-tuned remote-code model keeps its code; the MoE config is saved as the base had it
    remote = results / "models" / CELLS["remote"]
    assert json.loads((remote / "config.json").read_text())["auto_map"]
    mixtral = json.loads((results / "models" / CELLS["mixtral"] / "config.json").read_text())
    assert mixtral["output_router_logits"] is False
    for path in results.rglob("*"):
        if path.is_file() and path.suffix in {".log", ".json", ".jsonl", ".csv", ".md"}:
            assert "sk-standin-secret" not in path.read_text(errors="ignore"), path


@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="no .venv-vllm (make setup-vllm; make test creates it)")
def test_vllm_answers_the_trained_mixtral_standin_like_hf(standin_run, tmp_path):
    workdir, _ = standin_run
    model = workdir / "results" / "models" / CELLS["mixtral"]
    bench = tmp_path / "bench"
    questions = read_jsonl(REPO / "data" / "mt_bench_x" / "DE" / "question.jsonl")
    write_jsonl(bench / "DE" / "question.jsonl", [q for q in questions if q["category"] in ("math", "coding")][:4])
    answers = {}
    for backend, python in (("hf", sys.executable), ("vllm", VLLM_PYTHON)):
        settings = {"backend": backend, "max_new_tokens": 12, "batch_size": 4, "seed": 1, "vllm_dtype": "float32",
                    "vllm_enforce_eager": True, "vllm_gpu_memory_utilization": 0.3}
        result = subprocess.run(
            [str(python), "-m", "mlit", "generate", "--model", str(model), "--bench", str(bench), "--langs", "DE",
             "--model-id", "m", "--settings", json.dumps(settings), "--out-dir", str(tmp_path / backend)],
            capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "2",
                                                              "HF_HUB_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING"})
        assert result.returncode == 0, result.stderr[-3000:]
        answers[backend] = [row["choices"][0]["turns"] for row in read_jsonl(tmp_path / backend / "DE.jsonl")]
    assert answers["vllm"] == answers["hf"]  # greedy: the same prompt format, tokens and stop in both


def losses(model_dir):
    with open(model_dir / "loss.csv") as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}


def test_the_mixtral_standin_under_zero3_with_two_processes_equals_one_process(standin_run, tmp_path):
    workdir, _ = standin_run
    base = workdir / "results" / "base_models" / "mixtral-like"
    data = workdir / "results" / "data" / "demo__DE__16__seed1" / "train.jsonl"
    curves = {}
    for name, overrides in {"single": {}, "zero3": {"deepspeed": "zero3", "processes_per_node": 2}}.items():
        # 16 examples at 4 per optimizer step: 4 steps (one process accumulates 2 micro-batches of 2); activation
        # checkpointing with the stand-in's untied LM head, as the paper's configs train Mixtral
        settings = {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": 2,
                    "effective_batch_size": 4, "max_length": 512, "logging_steps": 1, "save_steps": 10**6,
                    "activation_checkpointing": True, **overrides}
        result = subprocess.run(
            [sys.executable, "-m", "mlit", "train", "--base", str(base), "--data", str(data), "--out",
             str(tmp_path / name), "--settings", json.dumps(settings), "--seed", "1"],
            capture_output=True, text=True, timeout=600,  # a hang is a failure, not a stuck CI
            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        curves[name] = losses(tmp_path / name)
    info = json.loads((tmp_path / "zero3" / "train_info.json").read_text())
    assert info["world_size"] == 2 and info["deepspeed"].endswith("zero3.json")
    assert sorted(curves["zero3"]) == sorted(curves["single"]) == [1, 2, 3, 4]  # 3 losses after updates
    assert curves["zero3"] == pytest.approx(curves["single"], rel=1e-4)
    assert curves["single"][4] != pytest.approx(curves["single"][1], rel=1e-3)  # the updates changed the model
