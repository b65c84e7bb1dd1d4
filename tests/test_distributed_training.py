"""DeepSpeed ZeRO-2 / ZeRO-3 with 2 CPU processes through the real rule and `accelerate launch`,
the effective batch size, resuming after a kill or a SIGTERM, and the empty-weights check."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlit.train.batching import BatchSizeError, gradient_accumulation_steps
from mlit.config import ConfigError, experiment_part
from mlit.files import write_jsonl
from mlit.train.launch import (PER_NODE_LAUNCHER, accelerate_command, cpus_per_node_of, Layout, per_node_command,
                               plan_layout, rendezvous_port, slurm_signal_option, worker_environment)
from mlit.train.sft import EmptyWeightsError, verify_saved_weights

from conftest import REPO, demo_config, snakemake
from support import slow_training

DEMO = demo_config()
CELL = "tiny-llama__demo__EN__32__seed1"


def losses(model_dir: Path) -> dict[int, float]:
    with open(model_dir / "loss.csv") as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}


def rows(n=64):
    return [{"messages": [{"role": "user", "content": f"Frage {i}: Was ist die Hauptstadt von Land {i % 7}?"},
                          {"role": "assistant", "content": f"Die Hauptstadt ist Stadt {i % 7}."}]} for i in range(n)]


def test_gradient_accumulation_follows_the_world_size():
    settings = {"per_device_train_batch_size": 4, "effective_batch_size": 32}
    assert [gradient_accumulation_steps(settings, world) for world in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(BatchSizeError, match=r"effective_batch_size=32 is not a multiple of launch.training."
                                             r"per_device_train_batch_size \(4\) × processes \(3\) = 12"):
        gradient_accumulation_steps(settings, 3)


def test_a_batch_that_cannot_be_split_stops_the_dry_run(tmp_path):
    config = copy.deepcopy(DEMO)
    config["launch"]["training"].update(processes_per_node=3)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=configfile, check=False)
    assert result.returncode != 0
    assert "base_models[tiny-llama].training: training.effective_batch_size=8 is not a multiple" \
        in result.stdout + result.stderr


def test_multi_node_layout_comes_from_slurm():
    with pytest.raises(ConfigError, match=r"launch.training.nodes=2: .*SLURM_PROCID"):
        plan_layout({"nodes": 2}, env={}, gpus=8)
    with pytest.raises(ConfigError, match=r"launch.training.nodes=2 but the Slurm allocation has SLURM_NNODES=3"):
        plan_layout({"nodes": 2}, env={"SLURM_PROCID": "0", "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_NNODES": "3"})
    assert plan_layout({"processes_per_node": 2}, env={}, gpus=0).world_size == 2
    assert plan_layout({}, env={}, gpus=4).world_size == 4 and plan_layout({}, env={}, gpus=0).world_size == 1
    # (the rendezvous host from a real `scontrol show hostnames`: tests/test_slurm.py)
    layout = Layout(nodes=2, processes_per_node=8, machine_rank=1, main_address="gpu07", main_port=30734)
    command = accelerate_command(layout, Path("/x/zero3.json"), ["train-worker"], cuda=True)
    joined = " ".join(command)
    assert "--num_processes 16 --num_machines 2 --machine_rank 1 --main_process_ip gpu07" in joined
    assert "--deepspeed_multinode_launcher standard" in joined and joined.endswith("--module mlit train-worker")
    assert command[1:3] == ["-m", "mlit.train.elastic_launch"]  # accelerate launch, one SIGTERM handled


def test_each_node_launcher_gets_all_cpus_of_its_node():
    # srun inside a job does not inherit --cpus-per-task (Slurm >= 22.05): ask for the node's CPUs, unbound
    env = {"SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "96"}
    assert per_node_command({"nodes": 2}, env) == ["srun", "--nodes=2", "--ntasks-per-node=1",
                                                   "--cpus-per-task=96", "--cpu-bind=none"]
    assert per_node_command({"nodes": 4}, {"SLURM_JOB_CPUS_PER_NODE": "64(x3),48"})[3] == "--cpus-per-task=48"
    assert per_node_command({"nodes": 2}, {}) == ["srun", "--nodes=2", "--ntasks-per-node=1", "--cpu-bind=none"]
    assert per_node_command({"nodes": 1}, env) == [] and per_node_command({"nodes": 2}, {**env, PER_NODE_LAUNCHER: "1"}) == []
    # under Snakemake's job-step executor only SLURM_JOB_ID is left: the CPUs come from `scontrol show job`
    asked = []
    assert per_node_command({"nodes": 2}, {"SLURM_JOB_ID": "41"}, job_cpus=lambda job: asked.append(job) or 16)[3] \
        == "--cpus-per-task=16" and asked == [41]
    shown = "JobId=41 JobName=x\n   NumNodes=2 NumCPUs=32 NumTasks=2 CPUs/Task=16 ReqB:S:C:T=0:0:*:*\n"
    assert cpus_per_node_of(shown) == 16 and cpus_per_node_of("JobId=41") is None


def test_the_rendezvous_port_is_outside_the_ephemeral_range():
    ports = {rendezvous_port(job) for job in range(0, 200_000, 7)}
    assert min(ports) >= 1024 and max(ports) < 32768  # Linux's ip_local_port_range: 32768-60999
    assert rendezvous_port(1234) != rendezvous_port(1235)
    assert rendezvous_port(40000) == 20000 + 40000 % 12000


def test_interconnect_variables_reach_the_workers(monkeypatch):
    monkeypatch.setenv("NCCL_IB_HCA", "mlx5_0")  # set by the site where snakemake runs: passes through as it is
    monkeypatch.delenv("NCCL_SOCKET_IFNAME", raising=False)
    env = worker_environment(True, {"communication_env": {"NCCL_SOCKET_IFNAME": "ib0", "NCCL_IB_HCA": "mlx5_9"}})
    assert env["NCCL_SOCKET_IFNAME"] == "ib0" and env["NCCL_IB_HCA"] == "mlx5_0"


def test_preemption_settings_reach_slurm_and_the_launcher():
    assert slurm_signal_option({"preempt_signal_minutes": 15}) == "--signal=TERM@900"
    assert slurm_signal_option({"preempt_signal_minutes": 0}) is None and slurm_signal_option({}) is None
    with pytest.raises(ConfigError, match="at most 65535"):
        slurm_signal_option({"preempt_signal_minutes": 2000})
    assert worker_environment(False, {"checkpoint_grace_s": 900})["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "900"
    assert worker_environment(True, {})["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "600"
    # execution only: changing them reruns nothing and keeps the checkpoints resumable
    settings = {"learning_rate": 1e-3, "preempt_signal_minutes": 10, "checkpoint_grace_s": 600, "max_lost_minutes": 30}
    assert experiment_part("training", settings) == {"learning_rate": 1e-3}


def test_empty_saved_weights_are_an_error(tmp_path, tiny_base_model):
    import torch
    from safetensors.torch import save_file

    (tmp_path / "empty").mkdir()
    save_file({"model.embed_tokens.weight": torch.zeros(0)}, str(tmp_path / "empty" / "model.safetensors"))
    with pytest.raises(EmptyWeightsError, match="empty"):
        verify_saved_weights(tmp_path / "empty", str(tiny_base_model))
    (tmp_path / "none").mkdir()
    with pytest.raises(EmptyWeightsError, match="no safetensors"):
        verify_saved_weights(tmp_path / "none", str(tiny_base_model))
    assert verify_saved_weights(tiny_base_model, str(tiny_base_model)) > 100_000


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory):
    """The tiny grid's EN cell trained through the real `train` rule: 1 process, ZeRO-2 x 2, ZeRO-3 x 2."""
    runs = {}
    for name, overrides in {"single": {}, "zero2": {"deepspeed": "zero2", "processes_per_node": 2},
                            "zero3": {"deepspeed": "zero3", "processes_per_node": 2}}.items():
        workdir = tmp_path_factory.mktemp(name)
        config = copy.deepcopy(DEMO)
        config.update(compositions=["EN"], sizes=[32], eval_languages=["EN"])
        config["training"].update(num_train_epochs=1, effective_batch_size=8)
        config["launch"]["training"].update(per_device_train_batch_size=4, logging_steps=1, **overrides)
        config["launch"]["judge_training"] = {"per_device_train_batch_size": 4}
        configfile = workdir / "config.yaml"
        configfile.write_text(yaml.safe_dump(config))
        snakemake(workdir, "--cores", "2", f"results/models/{CELL}", configfile=configfile)
        runs[name] = workdir / "results" / "models" / CELL
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_two_process_training_through_the_rule_equals_one_process(zero_runs, stage):
    from transformers import AutoModelForCausalLM

    info = json.loads((zero_runs[stage] / "train_info.json").read_text())
    single = json.loads((zero_runs["single"] / "train_info.json").read_text())
    assert info["world_size"] == 2 and info["deepspeed"].endswith(f"config/deepspeed/{stage}.json")
    assert (info["gradient_accumulation_steps"], single["gradient_accumulation_steps"]) == (1, 2)
    assert info["effective_batch_size"] == single["effective_batch_size"] == 8
    assert info["global_steps"] == single["global_steps"] == 4 and info["tokens_seen"] == single["tokens_seen"]
    # the same batches per optimizer step: the same loss curve, whatever the number of processes
    assert losses(zero_runs[stage]) == pytest.approx(losses(zero_runs["single"]), rel=1e-5)
    model = AutoModelForCausalLM.from_pretrained(zero_runs[stage])  # consolidated, loadable
    assert model.num_parameters() > 0 and info["parameters"] > 0
    log = (zero_runs[stage].parents[2] / "results" / "logs" / "train" / f"{CELL}.log").read_text()
    assert "mlit.train.elastic_launch --num_processes 2" in log and "--use_deepspeed" in log


def train_command(base, data, out, **overrides):
    settings = {"learning_rate": 1e-3, "num_train_epochs": 12, "per_device_train_batch_size": 4, "effective_batch_size": 8,
                "max_length": 128, "logging_steps": 1, "save_steps": 10, "save_total_limit": 2,
                "deepspeed": "zero2", "processes_per_node": 2, **overrides}
    return [sys.executable, "-m", "mlit", "train", "--base", str(base), "--data", str(data), "--out", str(out),
            "--settings", json.dumps(settings), "--seed", "3"]


def wait_for(predicate, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def kill_run(out: Path, sig=signal.SIGKILL):
    """Signal every process of the run at once, as Slurm does: SIGKILL when a node fails (no save),
    SIGTERM at preemption or the time limit (every process of the step)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--out" in argv and str(out).encode() in argv and int(proc.name) != os.getpid():
            try:
                os.kill(int(proc.name), sig)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_base_model):
    write_jsonl(tmp_path / "train.jsonl", rows())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    uninterrupted = subprocess.run(train_command(tiny_base_model, tmp_path / "train.jsonl", tmp_path / "full"),
                                   env=env, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    out = tmp_path / "killed"
    command = train_command(tiny_base_model, tmp_path / "train.jsonl", out)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "killed.tmp" / "checkpoints"
    wait_for(lambda: (checkpoints / "checkpoint-30" / "trainer_state.json").exists())
    kill_run(out)
    process.wait(timeout=60)
    assert not out.exists()  # nothing that looks finished
    survivors = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    assert survivors and max(survivors) >= 30 and len(survivors) <= 2  # keep-last-2

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((out / "train_info.json").read_text())
    assert info["resumed_from_step"] in survivors and info["resumed_from_step"] >= 30
    assert "staging" in resumed.stdout and f"resuming from checkpoint-{info['resumed_from_step']}" in resumed.stdout
    curve, reference = losses(out), losses(tmp_path / "full")
    assert sorted(curve) == list(range(1, 97)) == sorted(reference)  # every step once, none twice
    assert curve == pytest.approx(reference, rel=1e-5)  # resumed with optimizer, scheduler and data order
    assert json.loads((tmp_path / "full" / "train_info.json").read_text())["parameters"] == info["parameters"]
    assert not (tmp_path / "killed.tmp").exists() and not (out / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["launcher", "every_process_slow_save"])
def test_sigterm_saves_a_checkpoint_and_the_rerun_continues(tmp_path, tiny_base_model, how):
    """SIGTERM to the launcher; or, as Slurm sends it, to every process of the run (the torch elastic
    agent then gets it twice) with a checkpoint that takes 40 s more than torch's 30 s kill grace."""
    write_jsonl(tmp_path / "train.jsonl", rows())
    out = tmp_path / "model"
    slow = how == "every_process_slow_save"
    command = train_command(tiny_base_model, tmp_path / "train.jsonl", out, save_steps=1000, deepspeed="zero3",
                            num_train_epochs=20, **({"checkpoint_grace_s": 120} if slow else {}))
    env = slow_training.environment(checkpoint_delay_s=40) if slow else dict(os.environ)
    log = tmp_path / "first.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        # signalled after the first optimizer step is logged (a fixed sleep after the start could land before it
        # on a loaded machine: then no step is saved)
        wait_for(lambda: "resuming from scratch" in log.read_text() and "'loss'" in log.read_text())
        signalled = time.time()
        if slow:
            kill_run(out, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)  # what Slurm sends at preemption or the time limit
        assert process.wait(timeout=240) == 143, log.read_text()[-3000:]
    saved = list((tmp_path / "model.tmp" / "checkpoints").glob("checkpoint-*"))
    assert len(saved) == 1, log.read_text()[-3000:]  # save_steps is never reached: the signal saved it
    step = int(saved[0].name.split("-")[1])
    assert 0 < step < 160 and f"SIGTERM: saved checkpoint-{step}" in log.read_text()
    if slow:
        assert time.time() - signalled > 40 and "takes 40 s more" in log.read_text()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    info = json.loads((out / "train_info.json").read_text())
    assert info["resumed_from_step"] == step and info["global_steps"] == 160
    assert sorted(losses(out)) == list(range(1, 161))


@pytest.mark.slow
def test_zero3_without_a_16bit_gather_fails_loudly(tmp_path, tiny_base_model):
    config = json.loads((REPO / "config" / "deepspeed" / "zero3.json").read_text())
    config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = False
    (tmp_path / "zero3_nogather.json").write_text(json.dumps(config))
    write_jsonl(tmp_path / "train.jsonl", rows(16))
    command = train_command(tiny_base_model, tmp_path / "train.jsonl", tmp_path / "model", num_train_epochs=1,
                            deepspeed=str(tmp_path / "zero3_nogather.json"))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "EmptyWeightsError" in result.stdout + result.stderr
    assert "stage3_gather_16bit_weights_on_model_save" in result.stdout + result.stderr
    assert not (tmp_path / "model").exists()
