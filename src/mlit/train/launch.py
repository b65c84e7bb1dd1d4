"""Start a training run: in this process, or under ``accelerate launch`` with N processes per node
(DeepSpeed ZeRO or DDP), on one node or — inside a Slurm allocation — on several.

Preemption: Slurm sends SIGTERM ``launch.training.preempt_signal_minutes`` before the time limit (the train
rule's ``slurm_extra``, ``slurm_signal_option``); this launcher passes it on to ``accelerate launch``,
whose agent gives the workers ``launch.training.checkpoint_grace_s`` to save (mlit.train.elastic_launch).

One node: one launcher that sees all of the job's GPUs (``processes_per_node`` = visible GPUs unless
set in config; 1 on a CPU unless set). Several nodes: the rule starts one launcher per node with
``srun --nodes=K --ntasks-per-node=1``; each reads its machine rank from ``SLURM_PROCID`` and the
rendezvous host from ``scontrol show hostnames $SLURM_JOB_NODELIST`` (the first node).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlit.train.batching import gradient_accumulation_steps
from mlit.settings import ConfigError, deepspeed_path, section_defaults


@dataclass(frozen=True)
class Layout:
    nodes: int
    processes_per_node: int
    machine_rank: int
    main_address: str
    main_port: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


def visible_gpus() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slurm_hostnames(nodelist: str) -> list[str]:
    result = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
    if result.returncode or not result.stdout.split():
        raise RuntimeError(f"scontrol show hostnames {nodelist} failed: {result.stderr.strip()}")
    return result.stdout.split()


def plan_layout(settings: dict, env: dict | None = None, gpus: int | None = None) -> Layout:
    env = os.environ if env is None else env
    settings = section_defaults("training", settings)
    nodes = int(settings["nodes"])
    per_node = settings["processes_per_node"] or (visible_gpus() if gpus is None else gpus) or 1
    if nodes == 1:
        return Layout(1, int(per_node), 0, "127.0.0.1", int(settings["main_process_port"] or free_port()))
    missing = [name for name in ("SLURM_PROCID", "SLURM_JOB_NODELIST", "SLURM_NNODES") if name not in env]
    if missing:
        raise ConfigError(
            f"launch.training.nodes={nodes}: multi-node training runs inside a Slurm allocation, one launcher per node "
            f"(srun --nodes={nodes} --ntasks-per-node=1); {', '.join(missing)} not set. Use the Slurm profile, or "
            "set launch.training.nodes: 1 to train on this machine")
    if int(env["SLURM_NNODES"]) != nodes:
        raise ConfigError(f"launch.training.nodes={nodes} but the Slurm allocation has SLURM_NNODES={env['SLURM_NNODES']}")
    port = int(settings["main_process_port"] or rendezvous_port(int(env.get("SLURM_JOB_ID", "0"))))
    return Layout(nodes, int(per_node), int(env["SLURM_PROCID"]), slurm_hostnames(env["SLURM_JOB_NODELIST"])[0], port)


# Linux's ephemeral ports (net.ipv4.ip_local_port_range, 32768-60999 by default) are handed to outgoing
# connections: a rendezvous port there can be taken by one of them on the first node. This range is below it.
RENDEZVOUS_PORTS = (20000, 32000)


def rendezvous_port(job_id: int) -> int:
    """The multi-node rendezvous port of Slurm job ``job_id`` (``training.main_process_port`` unset): one
    port per job id, so that two jobs sharing a first node differ, and never in the ephemeral range."""
    low, high = RENDEZVOUS_PORTS
    return low + job_id % (high - low)


PER_NODE_LAUNCHER = "MLIT_PER_NODE_LAUNCHER"


def node_cpus(env: dict, job_cpus=None) -> int | None:
    """CPUs the job has on each node: ``SLURM_CPUS_ON_NODE``, else the smallest count in
    ``SLURM_JOB_CPUS_PER_NODE`` (e.g. ``32(x2),16``), else -- under Snakemake's job-step executor,
    which removes every ``SLURM_*`` variable but the job id -- what ``scontrol show job`` says of
    ``SLURM_JOB_ID`` (``job_cpus``, default ``scontrol_cpus_per_node``); None when none says."""
    if env.get("SLURM_CPUS_ON_NODE", "").isdigit():
        return int(env["SLURM_CPUS_ON_NODE"])
    counts = [int(part.split("(")[0]) for part in env.get("SLURM_JOB_CPUS_PER_NODE", "").split(",")
              if part.split("(")[0].isdigit()]
    if counts:
        return min(counts)
    if env.get("SLURM_JOB_ID", "").isdigit():
        return (job_cpus or scontrol_cpus_per_node)(int(env["SLURM_JOB_ID"]))
    return None


def cpus_per_node_of(shown: str) -> int | None:
    """CPUs per node of a job from ``scontrol show job`` text: ``NumCPUs`` over ``NumNodes`` (the train
    rule asks --ntasks=nodes with --cpus-per-task, so each node holds the same count)."""
    import re

    cpus = re.search(r"\bNumCPUs=(\d+)", shown)
    nodes = re.search(r"\bNumNodes=(\d+)", shown)
    if not cpus or not nodes or int(nodes.group(1)) == 0:
        return None
    return int(cpus.group(1)) // int(nodes.group(1))


def scontrol_cpus_per_node(job_id: int) -> int | None:
    result = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True)
    if result.returncode:
        print(f"scontrol show job {job_id} failed ({result.stderr.strip()}): the per-node launchers get "
              "srun's default CPUs", file=sys.stderr, flush=True)
        return None
    return cpus_per_node_of(result.stdout)


def per_node_command(settings: dict, env: dict, job_cpus=None) -> list[str]:
    """The srun prefix that starts one launcher per node of a multi-node Slurm job (the executor
    plugin does not wrap `mpi` jobs in srun), or [] on one node or when already inside it.

    Since Slurm 22.05 a step started by srun does not inherit the job's --cpus-per-task (and the job-step
    executor removes SLURM_CPUS_PER_TASK anyway): without it each node's one task gets one CPU, and the
    launcher, its N training processes and their data loaders share one core. So the task asks for all
    of the node's CPUs (``node_cpus``), unbound."""
    nodes = int(section_defaults("training", settings)["nodes"])
    if nodes <= 1 or env.get(PER_NODE_LAUNCHER):
        return []
    cpus = node_cpus(env, job_cpus)
    return ["srun", f"--nodes={nodes}", "--ntasks-per-node=1",
            *([f"--cpus-per-task={cpus}"] if cpus else []), "--cpu-bind=none"]


def relaunch_per_node(settings: dict) -> None:
    """On several nodes, replace this process by srun running the same command once per node."""
    prefix = per_node_command(settings, os.environ)
    if prefix and "SLURM_JOB_ID" in os.environ:  # outside Slurm, plan_layout says what is needed
        command = [*prefix, sys.executable, "-m", "mlit", *sys.argv[1:]]
        print(f"one launcher per node: {shlex.join(command)}", flush=True)
        os.execvpe(prefix[0], command, {**os.environ, PER_NODE_LAUNCHER: "1"})


def deepspeed_config(settings: dict) -> Path | None:
    """``launch.training.deepspeed``: null, a preset name in config/deepspeed/ (zero2, zero3,
    zero3_offload) or a path to a DeepSpeed JSON config."""
    return deepspeed_path(section_defaults("training", settings)["deepspeed"])


def slurm_signal_option(settings: dict) -> str | None:
    """The sbatch option (the train rules' ``slurm_extra``) that makes Slurm send SIGTERM
    ``launch.training.preempt_signal_minutes`` before the time limit, so the run checkpoints and a retry
    resumes. No ``B:`` prefix: the signal goes to every process of the job's steps (the rule's
    command runs in one, or starts one per node), not to Snakemake's batch shell, which would not
    pass it on. Slurm may send it up to a minute earlier than asked; None: no early signal."""
    minutes = section_defaults("training", settings)["preempt_signal_minutes"]
    if not minutes:
        return None
    seconds = int(round(float(minutes) * 60))
    if seconds > 65535:
        raise ConfigError(f"launch.training.preempt_signal_minutes={minutes}: Slurm's --signal takes at most 65535 s "
                          "(1092 minutes)")
    return f"--signal=TERM@{seconds}"


def worker_arguments(base: str, data: str, out: str, settings_json: str, seed: int) -> list[str]:
    return ["train-worker", "--base", base, "--data", data, "--out", out, "--settings", settings_json,
            "--seed", str(seed)]


def accelerate_command(layout: Layout, deepspeed: Path | None, worker_args: list[str], cuda: bool) -> list[str]:
    command = [sys.executable, "-m", "mlit.train.elastic_launch",  # accelerate launch, see that module
               "--num_processes", str(layout.world_size), "--num_machines", str(layout.nodes),
               "--machine_rank", str(layout.machine_rank), "--main_process_ip", layout.main_address,
               "--main_process_port", str(layout.main_port), "--dynamo_backend", "no"]
    if deepspeed is not None:
        command += ["--use_deepspeed", "--deepspeed_config_file", str(deepspeed)]
        if layout.nodes > 1:
            command += ["--deepspeed_multinode_launcher", "standard"]
    elif layout.world_size > 1:
        command += ["--multi_gpu"]
    return command + ["--module", "mlit", *worker_args]


def checkpoint_grace_s(settings: dict) -> int:
    """``launch.training.checkpoint_grace_s``: how long the launcher lets its workers write the SIGTERM
    checkpoint before it SIGKILLs them (torch elastic's own default is 30 s)."""
    return int(section_defaults("training", settings)["checkpoint_grace_s"])


def worker_environment(cuda: bool, settings: dict | None = None) -> dict:
    env = dict(os.environ)
    if not cuda:
        env.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed on the CPU (gloo); see the README
    env.pop("ACCELERATE_USE_CPU", None)  # silently turns ZeRO-2 into DDP and breaks ZeRO-3
    # the torch elastic agent under `accelerate launch` SIGKILLs its workers this long after SIGTERM
    env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] = str(checkpoint_grace_s(settings or {}))
    return {**communication_environment(settings or {}, env), **env}


def communication_environment(settings: dict, env: dict) -> dict[str, str]:
    """``launch.training.communication_env`` (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, ...: the site's network), less
    the variables the job's environment already sets: those pass through as they are (sbatch
    --export=ALL, and the job-step executor removes only SLURM_*/SRUN_*/SBATCH_*)."""
    configured = section_defaults("training", settings)["communication_env"]
    return {name: str(value) for name, value in configured.items() if name not in env}


def usable_cpus() -> int:
    """CPUs this process may run on (its Slurm step's binding, where the task plugin binds)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_training(base: str, data: str, out: Path, settings: dict, settings_json: str, seed: int) -> int:
    """Train in this process when there is one process and no DeepSpeed; else start the launcher and
    return its exit status (SIGTERM is passed on, so workers checkpoint before they stop; the agent
    waits ``launch.training.checkpoint_grace_s`` for them, this process as long as they take)."""
    layout = plan_layout(settings)
    deepspeed = deepspeed_config(settings)
    # the Slurm tests read this line: a step bound to fewer CPUs than its allocation shows it here
    print(f"machine {layout.machine_rank}: {usable_cpus()} usable CPU(s) (sched_getaffinity)", flush=True)
    gradient_accumulation_steps(settings, layout.world_size)  # fail here, before starting processes
    if layout.world_size == 1 and deepspeed is None:
        from mlit.train.sft import train

        train(base, data, out, settings, seed=seed)
        return 0
    cuda = visible_gpus() > 0
    command = accelerate_command(layout, deepspeed, worker_arguments(base, data, str(out), settings_json, seed), cuda)
    print(f"machine {layout.machine_rank}/{layout.nodes}, {layout.processes_per_node} process(es) per node, "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}: {shlex.join(command)}", flush=True)
    process = subprocess.Popen(command, env=worker_environment(cuda, settings))
    terminated = []

    def forward(signum, frame):
        terminated.append(signum)
        process.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        status = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated and status:
        print("SIGTERM: the workers saved a checkpoint and stopped; rerun the job to resume", flush=True)
        return 143
    return status
