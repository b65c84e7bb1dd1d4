"""What a job asks the cluster for, per step (``train``, ``generate``, ``judge``) and base model: pure
functions of the filled config (validated, the schema's defaults set: ``Grid.config``, the workflow's
``config``). Read by the rules' resources (workflow/rules/common.smk, judge.smk), the plan
(``mlit.plan.grid``) and bench/slurm_requests.py; ``check_resources`` is one of the grid's checks. No I/O."""

from __future__ import annotations

from mlit.config_error import ConfigError

STEPS = ("train", "generate", "judge")


def base_model(config: dict, name: str) -> dict:
    """The ``base_models[]`` entry named ``name`` (KeyError if none is)."""
    for model in config["base_models"]:
        if model["name"] == name:
            return model
    raise KeyError(name)


def training_launch(config: dict, name: str) -> dict:
    """``launch.training`` with ``base_models[].launch.training`` of base model ``name`` merged over it, as
    written (the grid's ``training_launch`` also makes a DeepSpeed path absolute)."""
    return {**config["launch"]["training"], **base_model(config, name)["launch"]["training"]}


def job_resources(config: dict, step: str, model: str | None = None) -> dict:
    """Cluster resources of one step's job: ``launch.resources.<step>``, overridden per base model by
    ``base_models[].launch.resources.<step>`` (the defaults are the schema's)."""
    merged = dict(config["launch"]["resources"][step])
    if model is not None:
        merged.update(base_model(config, model)["launch"]["resources"][step])
    return merged


def job_gpus(config: dict, step: str, model: str | None = None) -> int | None:
    """``launch.resources.<step>.gpus`` (per base model): a generate job's GPUs (vLLM's tensor parallel
    size), the rules' ``gpus`` resource; None where not set."""
    return job_resources(config, step, model).get("gpus")


def job_cpus(config: dict, step: str, model: str | None = None) -> int | None:
    """CPUs per task (= per node) of a GPU step's job: its GPUs per node x ``cpus_per_gpu``, as the
    Slurm resource ``cpus_per_task``. The job-step executor starts the step with
    ``srun --cpus-per-task=<this>`` (with --cpus-per-gpu it falls back to the rule's threads, as it
    sees no SLURM_GPUS under --gres): the step gets every CPU the job holds. None: the rule's threads."""
    per_gpu = job_resources(config, step, model).get("cpus_per_gpu")
    gpus = training_launch(config, model)["gpus_per_node"] if step == "train" and model else job_gpus(config, step, model)
    return per_gpu * gpus if per_gpu and gpus else None


def capped_request(config: dict, step: str, model: str | None, attempt: int) -> dict[str, int]:
    """``runtime`` and ``mem_mb`` of attempt ``attempt``: x attempt, but never above
    ``max_runtime`` (the partition's time limit) and ``max_mem_mb`` (a node's memory), which a
    cluster would refuse (or never schedule)."""
    resources = job_resources(config, step, model)
    runtime, mem = resources["runtime"] * attempt, resources["mem_mb"] * attempt
    if resources.get("max_runtime"):
        runtime = min(runtime, resources["max_runtime"])
    if resources.get("max_mem_mb"):
        mem = min(mem, resources["max_mem_mb"])
    return {"runtime": runtime, "mem_mb": mem}


def train_slurm_resources(config: dict, name: str) -> dict:
    """How a training job of base model ``name`` maps onto Slurm (profiles/slurm): ``nodes``; GPUs per
    node as ``gres`` (gres is per node, `gpu` would be per job); on several nodes one task (one
    launcher, started by `mlit train` through srun) per node as an ``mpi`` job, with
    ``tasks_per_gpu: 0`` so that the plugin does not turn ``tasks`` into --ntasks-per-gpu."""
    launch = training_launch(config, name)
    nodes = int(launch["nodes"])
    gpus = launch["gpus_per_node"]
    several = nodes > 1
    return {"nodes": nodes, "gres": f"gpu:{gpus}" if gpus else None, "tasks": nodes if several else None,
            "tasks_per_gpu": 0 if several else None, "mpi": "srun" if several else None}


def check_resources(config: dict) -> None:
    """A first attempt must already fit: runtime <= max_runtime, mem_mb <= max_mem_mb (ConfigError)."""
    for model in [None, *(entry["name"] for entry in config["base_models"])]:
        for step in STEPS:
            resources = job_resources(config, step, model)
            where = f"base_models[{model}].launch.resources.{step}" if model else f"launch.resources.{step}"
            for key, limit in (("runtime", "max_runtime"), ("mem_mb", "max_mem_mb")):
                if resources.get(limit) and resources[key] > resources[limit]:
                    raise ConfigError(f"{where}.{key}={resources[key]} is above {limit}={resources[limit]}: "
                                      f"the cluster would refuse the job; lower {key} or raise {limit}")
