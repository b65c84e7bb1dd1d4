"""`snakemake --profile profiles/slurm` against a real two-node Slurm cluster (slurmctld + two slurmd on this
machine, placeholder GPU GRES, task/affinity CPU binding) started by tests/slurm/up.sh. Needs root and
Debian's slurm-wlm (`make test` installs it where it can)."""

import copy
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mlit.files import read_jsonl
from mlit.train.launch import plan_layout, slurm_hostnames

from conftest import REPO, demo_config, snakemake, snakemake_command
from support import slow_training
from support.scripted_server import OpenAIServer

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

DEMO = demo_config()
CELL = "mixtral-like__demo__EN__30__seed1"
# test-only overrides: no accounting database here (squeue for status), and quick first polls
SLURM_ARGS = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "3"]
SUBMITTED = re.compile(r"SLURM jobid (\d+) \(log: (\S+/rule_(\w+)/\S+)\)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        pytest.skip("needs root and slurm-wlm (make test installs it when run as root)")
    state = tmp_path_factory.mktemp("slurm")
    etc_before = etc_slurm()
    hosts_before = Path("/etc/hosts").read_bytes()  # up.sh adds the node names n1 n2
    no_cluster = os.environ.get("SLURM_CONF")  # conftest's empty config: Slurm commands fail at once
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")  # written by up.sh; Snakemake and the tests read it
    up = subprocess.run([str(REPO / "tests" / "slurm" / "up.sh"), str(state)], capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield state
    finally:
        subprocess.run([str(REPO / "tests" / "slurm" / "down.sh"), str(state)], check=False)
        if no_cluster is None:
            os.environ.pop("SLURM_CONF")
        else:
            os.environ["SLURM_CONF"] = no_cluster
    # left behind, the test cluster's config would make every later Snakemake start wait for its controller
    assert etc_slurm() == etc_before, "tests/slurm/down.sh did not restore /etc/slurm"
    assert Path("/etc/hosts").read_bytes() == hosts_before, "tests/slurm/down.sh did not restore /etc/hosts"


def etc_slurm() -> dict[str, bytes | None]:
    """/etc/slurm's two files as they are (None: absent), and whether the folder exists."""
    files = {name: (Path("/etc/slurm") / name).read_bytes() if (Path("/etc/slurm") / name).exists() else None
             for name in ("slurm.conf", "gres.conf")}
    return {**files, "dir": Path("/etc/slurm").is_dir()}


def tiny_config(standins, judge_url: str, **judge) -> dict:
    """The Mixtral-shaped stand-in (tests/standins.py) on one small cell, judged by a scripted local
    OpenAI-protocol server; ZeRO-3 with two processes: on one node (a local run, or a Slurm job on one
    node with 2 GPUs) -- or one per node, see ``two_nodes``."""
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN"], sizes=[30], eval_languages=["EN"], chat_template="opengptx")
    config["base_models"] = [{"name": "mixtral-like", "path": str(standins["mixtral"])}]
    config["training"].update(num_train_epochs=1, effective_batch_size=8, max_length=512)
    config["launch"]["training"].update(deepspeed="zero3", processes_per_node=2, gpus_per_node=2,
                                        per_device_train_batch_size=4, logging_steps=1)
    config["generation"].update(questions_per_category=1, max_new_tokens=16, batch_size=8)
    # 2 CPUs per GPU: the job step of each GPU job must get all of them (srun --cpus-per-task, bound by
    # task/affinity), not the rule's one thread
    config["launch"]["resources"] = {"train": {"runtime": 30, "mem_mb": 4000, "cpus_per_gpu": 1},
                                     "generate": {"runtime": 30, "mem_mb": 4000, "gpus": 1, "cpus_per_gpu": 2},
                                     "judge": {"runtime": 30, "mem_mb": 2000}}
    # every answer goes to the judge, whatever its language (the stand-in's answers after 4 steps are noise)
    config["judge"] = {"model": "scripted-judge", "base_url": judge_url, "off_language": "report",
                       "no_language": "judge", **judge}
    config["launch"]["judge"] = {"api_key_env": "MLIT_SLURM_TEST_KEY", "max_retries": 1, "parallel": 4}
    return config


def two_nodes(config: dict) -> dict:
    """The same experiment as one node with two processes (nodes, processes and GPUs are launch
    settings): one launcher and one GPU on each of 2 nodes, with 2 CPUs per node."""
    config = copy.deepcopy(config)
    config["launch"]["training"].update(nodes=2, processes_per_node=1, gpus_per_node=1)
    config["launch"]["resources"]["train"]["cpus_per_gpu"] = 2
    return config


def submitted(output: str) -> dict[int, str]:
    """Slurm job id -> rule, from Snakemake's 'submitted with SLURM jobid' lines."""
    return {int(job): rule for job, _, rule in SUBMITTED.findall(output)}


def slurm_job(job_id: int) -> dict[str, str]:
    shown = subprocess.run(["scontrol", "show", "job", "-d", str(job_id)], capture_output=True, text=True,
                           check=True).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", shown))


def test_scontrol_expands_a_node_list_for_the_multi_node_rendezvous(cluster):
    assert slurm_hostnames("gpu[07-08]") == ["gpu07", "gpu08"]
    env = {"SLURM_PROCID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "1234"}
    layout = plan_layout({"nodes": 2}, env=env, gpus=8)  # the second node's launcher of a 2 x 8 GPU job
    assert (layout.machine_rank, layout.main_address, layout.main_port, layout.world_size) == (1, "gpu07", 21234, 16)


def sweep_config(standins, judge_url: str) -> dict:
    """tiny_config on two nodes with an early signal before the time limit (launch.training.preempt_signal_minutes:
    sbatch --signal=TERM@seconds in the train rule's slurm_extra; the run checkpoints and the retry resumes)."""
    config = two_nodes(tiny_config(standins, judge_url))
    config["launch"]["training"].update(preempt_signal_minutes=5, checkpoint_grace_s=240, max_lost_minutes=20)
    return config


@pytest.fixture(scope="module")
def sweep(cluster, standins, tmp_path_factory):
    """The same grid run locally (ZeRO-3, two processes on this machine) and through `snakemake --profile
    profiles/slurm` (ZeRO-3, one process on each of two Slurm nodes), whose train job gets an early SIGTERM
    in the middle of its run and is resumed by the profile's retry (see ``sigterm_mid_training``):
    (local workdir, Slurm workdir, the Slurm run's output, the preemption's record). Later tests start from
    the Slurm run's finished workdir."""
    root = tmp_path_factory.mktemp("sweep")
    local, on_slurm = root / "local", root / "slurm"
    os.environ["MLIT_SLURM_TEST_KEY"] = "sk-slurm-test"
    try:
        with OpenAIServer() as server:
            (root / "local.yaml").write_text(yaml.safe_dump(tiny_config(standins, server.base_url)))
            (root / "config.yaml").write_text(yaml.safe_dump(sweep_config(standins, server.base_url)))
            snakemake(local, "--cores", "2", configfile=root / "local.yaml")
            output, preemption = sigterm_mid_training(on_slurm, root / "config.yaml")
    finally:
        os.environ.pop("MLIT_SLURM_TEST_KEY")
    return local, on_slurm, output, preemption


STEP_DELAY_S = 3  # each training step of the Slurm run takes this much longer: time to signal it mid-run


def sigterm_mid_training(workdir: Path, configfile: Path) -> tuple[str, dict]:
    """Run the sweep through the Slurm profile and, once both nodes' ranks have started step 2 of the 4,
    send the train job SIGTERM as Slurm does at preemption or at ``sbatch --signal=TERM@<s>`` (`scancel
    --signal=TERM`: every job step, not the batch shell). The first attempt checkpoints on both nodes and
    fails; the profile's retry (retries: 1) resumes it. Returns the run's output and what the first
    attempt left: its job id, its train log (copied once the job has left the queue, before the retry's
    shell rewrites it) and the Slurm job's final state."""
    command, env = snakemake_command(workdir, *SLURM_ARGS, "--verbose", configfile=configfile)
    env = slow_training.environment(step_delay_s=STEP_DELAY_S, env=env)
    log = workdir / "results" / "logs" / "train" / f"{CELL}.log"
    out = workdir.parent / "slurm-run.out"
    with out.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: all(f"rank {rank} starts step 2" in text(log) for rank in (0, 1)), process, out)
            [job] = [job for job, rule in submitted(out.read_text()).items() if rule == "train"]
            subprocess.run(["scancel", "--signal=TERM", str(job)], check=True)
            wait_for(lambda: str(job) not in squeue(), process, out)
            first_log = text(log)
            returncode = process.wait(timeout=1800)
        finally:
            if process.poll() is None:
                process.kill()
    output = out.read_text()
    assert returncode == 0, output[-6000:]
    return output, {"job": job, "log": first_log, "state": slurm_job(job)["JobState"]}


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def squeue() -> str:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout


def wait_for(condition, process: subprocess.Popen, out: Path, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"snakemake ended first:\n{out.read_text()[-6000:]}"
        assert time.monotonic() < deadline, f"timed out:\n{out.read_text()[-6000:]}"
        time.sleep(0.2)


def test_a_sweep_runs_each_rule_where_the_profile_says_and_equals_a_local_run(cluster, sweep):
    local, on_slurm, output, preemption = sweep
    jobs = submitted(output)
    # quick steps ran where Snakemake runs; the rest went to Slurm, once each but the train job: its first
    # attempt got the early SIGTERM (see sigterm_mid_training) and the profile's retry resumed it
    assert sorted(jobs.values()) == ["generate", "judge", "train", "train"], output[-3000:]
    expected = {"train": ("gpu", "gpu:1", 2, 4), "generate": ("gpu", "gpu:1", 1, 2), "judge": ("cpu", None, 1, None)}
    for job_id, rule in jobs.items():
        job = slurm_job(job_id)
        partition, gres, nodes, cpus = expected[rule]
        state = "FAILED" if job_id == preemption["job"] else "COMPLETED"
        assert job["JobState"] == state and job["Partition"] == partition, (rule, job)
        assert job.get("TresPerNode", "(null)") == (f"gres:{gres}" if gres else "(null)"), (rule, job)
        assert int(job["NumNodes"]) == nodes and (cpus is None or int(job["NumCPUs"]) == cpus), (rule, job)
    log = (on_slurm / "results" / "logs" / "train" / f"{CELL}.log").read_text()
    # one launcher per node (srun under the job-step executor, which leaves only SLURM_JOB_ID: the CPUs come
    # from scontrol), each bound to all CPUs of its node, together one ZeRO-3 run of world size 2
    assert "one launcher per node: srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=2 --cpu-bind=none" in log
    assert "machine 0: 2 usable CPU(s)" in log and "machine 1: 2 usable CPU(s)" in log, log[-3000:]
    assert "--num_processes 2 --num_machines 2" in log and "--main_process_ip n1" in log
    info = json.loads((on_slurm / "results" / "models" / CELL / "train_info.json").read_text())
    assert info["world_size"] == 2 and info["deepspeed"].endswith("zero3.json")
    # the early SIGTERM mid-run: the workers on both nodes saved one ZeRO-3 checkpoint and each node's launcher
    # stopped (exit 143); the retry resumed that checkpoint (its shards of both ranks) and trained the rest
    first = preemption["log"]
    assert "rank 0 starts step 2" in first and "rank 1 starts step 2" in first, first[-3000:]
    assert first.count("SIGTERM: the workers saved a checkpoint and stopped") == 2, first[-3000:]
    saved = int(re.search(r"SIGTERM: saved checkpoint-(\d+)", first).group(1))
    assert 2 <= saved < 4 and info["resumed_from_step"] == saved and info["global_steps"] == 4, (saved, info)
    assert f"resuming from checkpoint-{saved}" in log and "rank 0 starts step 1" not in log
    # the generate job's step got the job's 2 CPUs, not the rule's one thread
    assert "2 usable CPU(s)" in (on_slurm / "results" / "logs" / "generate" / f"{CELL}.log").read_text()
    completed = (cluster / "log" / "jobcomp.txt").read_text()
    assert all(f"JobId={job_id} " in completed for job_id in jobs)
    # the same results as the local run on one node: the same loss curve, step by step
    loss = (on_slurm / "results" / "models" / CELL / "loss.csv").read_text()
    assert loss == (local / "results" / "models" / CELL / "loss.csv").read_text()
    assert len(loss.splitlines()) == 1 + 4  # 30 examples, 8 per step: 4 logged steps

    def answers(root):
        return [(a["question_id"], a["choices"]) for a in read_jsonl(root / "results" / "answers" / CELL / "EN.jsonl")]

    def scores(root):
        return [(j["question_id"], j["turn"], j["score"], j["judgment"]) for j in
                read_jsonl(root / "results" / "judgments" / CELL / "EN.jsonl")]

    assert answers(on_slurm) == answers(local)
    assert scores(on_slurm) == scores(local)
    assert (on_slurm / "results" / "tables" / "main_table.csv").read_text() == \
        (local / "results" / "tables" / "main_table.csv").read_text()


def test_a_failed_job_names_its_slurm_log_and_a_rerun_resubmits_only_it(cluster, sweep, standins, tmp_path,
                                                                          monkeypatch):
    """From the sweep's finished workdir, the judge moves to an endpoint that fails: only the judge jobs
    run (and fail, naming their Slurm log); once the endpoint is back, a rerun resubmits only them."""
    failing = {"on": True}

    def behaviour(request, attempt):
        return ("status", 503, {}) if failing["on"] else ("reply", "Fine. Rating: [[6]]")

    shutil.copytree(sweep[1], tmp_path, symlinks=True, dirs_exist_ok=True)
    monkeypatch.setenv("MLIT_SLURM_TEST_KEY", "sk-slurm-test")
    with OpenAIServer(behaviour) as server:
        config = sweep_config(standins, server.base_url)
        # another judge model: the judge cache (by model and prompt) has none of its replies
        config["judge"].update(model="gpt-4")
        config["launch"]["judge"].update(max_retries=1, retry_initial_s=0.01, timeout_s=5)
        configfile = tmp_path / "config.yaml"
        configfile.write_text(yaml.safe_dump(config))
        first = snakemake(tmp_path, *SLURM_ARGS, configfile=configfile, check=False)
        output = first.stdout + first.stderr
        assert first.returncode != 0
        assert "Error in rule judge" in output
        failed_logs = [log for _, log, rule in SUBMITTED.findall(output) if rule == "judge"]
        assert failed_logs and any(log in output.split("Error in rule judge", 1)[1] for log in failed_logs)
        assert "JudgeEndpointError" in Path(failed_logs[-1]).read_text() + \
            (tmp_path / "results" / "logs" / "judge" / f"{CELL}.log").read_text()
        assert set(submitted(output).values()) == {"judge"}  # the model and its answers are the sweep's

        failing["on"] = False  # the endpoint is back
        second = snakemake(tmp_path, *SLURM_ARGS, configfile=configfile)
        assert sorted(submitted(second.stdout + second.stderr).values()) == ["judge"]
    judgments = read_jsonl(tmp_path / "results" / "judgments" / CELL / "EN.jsonl")
    # every answer was sent to the judge (judge.off_language: report) and got its 6
    assert len(judgments) == 16 and {j["score"] for j in judgments} == {6}
    assert all(j["judgment"] is not None for j in judgments)


def test_the_train_job_asks_slurm_for_an_early_sigterm(sweep):
    _, on_slurm, output, _ = sweep
    calls = [line for line in output.splitlines() if "sbatch call:" in line and "rule_train/" in line]
    assert len(calls) == 2 and all("--signal=TERM@300" in call for call in calls), calls  # the retry's too
    [written] = (on_slurm / "results" / "execution").glob("*.json")  # this invocation's execution settings
    execution = yaml.safe_load(written.read_text())
    assert execution["training"]["mixtral-like"]["checkpoint_grace_s"] == 240  # how the job runs, not what it learns
