"""Which settings define a step's result and which only say how to run it.

*Experiment* settings (model, data, learning settings, seed, effective batch, generation sampling,
judge model and prompts, ...) are a rule's params: changing one reruns that step and what depends on
it. *Execution* settings (checkpoint and log cadence, processes, GPUs, nodes, parallelism, timeouts,
prices, polling, interpreter paths) never trigger a rerun: each Snakemake invocation (not a dry run)
writes them to ``results/execution/<hash of the content>.json`` (``execution_file``), names that file on
each job's command line (not in the params), and each job merges its section of that file into its
settings; a key of the file that the job's params also set is refused (``merged``). So another
invocation (another config, a dry run) never changes the settings of jobs already planned or running.
The README's config table lists the execution keys (``EXECUTION_KEYS``).
A training section of that file also holds the schema's defaults of the experiment keys the config
leaves out: the train steps' params hold only the keys the config sets (``Grid.training_params``), so
that filling in defaults (``mlit.config.with_defaults``) reruns nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

EXECUTION_KEYS: dict[str, tuple[str, ...]] = {
    # how a training job runs: the same batches and learning settings give the same model
    "training": ("save_steps", "save_total_limit", "logging_steps", "main_process_port", "processes_per_node",
                 "nodes", "gpus_per_node", "deepspeed", "activation_checkpointing", "per_device_batch_size",
                 "preempt_signal_minutes", "checkpoint_grace_s", "max_lost_minutes", "report_to",
                 "communication_env", "attn_implementation"),
    # how a generation job runs: the interpreter, the GPUs (tensor parallelism, a model spread over GPUs),
    # memory, compilation and how prompts are submitted to vLLM (per-request seeds: the same answers)
    "generation": ("vllm_python", "vllm_gpu_memory_utilization", "vllm_enforce_eager", "vllm_submission", "gpus",
                   "hf_compile", "hf_device_map", "batch_size"),
    "judge": ("parallel", "timeout_s", "prices_per_1k", "batch_poll_s", "max_retries", "retry_initial_s",
              "api_key_env", "mode"),
}
# per_device_batch_size only says how the effective batch is split; without effective_batch_size it
# (with gradient_accumulation_steps) *is* the batch, and so part of the experiment
SPLIT_ONLY_WITH_EFFECTIVE_BATCH = {"per_device_batch_size"}
# generation.batch_size: vLLM answers each request with its own seed (whole-turn submission ignores the batch
# size); the hf backend samples a batch from one random stream, so there the batch is part of the experiment
BATCH_ONLY_WITH_VLLM = {"batch_size"}


def execution_keys(section: str, settings: dict) -> set[str]:
    keys = set(EXECUTION_KEYS[section])
    if section == "training" and settings.get("effective_batch_size") is None:
        keys -= SPLIT_ONLY_WITH_EFFECTIVE_BATCH
    if section == "generation" and settings.get("backend", "hf") != "vllm":
        keys -= BATCH_ONLY_WITH_VLLM
    return keys


def experiment_part(section: str, settings: dict) -> dict:
    """The settings that define the result (a rule's params). For the judge, the demo judge's
    ``serve.training`` is left out: it defines the served judge model (the train_judge step's params,
    split there), which the judge step has as an input."""
    keys = execution_keys(section, settings)
    part = {key: value for key, value in settings.items() if key not in keys}
    if section == "judge" and isinstance(part.get("serve"), dict):
        part["serve"] = {key: value for key, value in part["serve"].items() if key != "training"}
    return part


def execution_part(section: str, settings: dict) -> dict:
    """The settings that only say how to run (read by the job from the execution file)."""
    keys = execution_keys(section, settings)
    return {key: value for key, value in settings.items() if key in keys}


def execution_file(results: str, settings: dict) -> str:
    """Where an invocation's execution settings are written: named by their content, so that two
    invocations with other settings never share a file, and the same settings always give the same file."""
    import hashlib

    text = json.dumps(settings, sort_keys=True)
    return f"{results}/execution/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def write_if_changed(path: str | Path, settings: dict) -> None:
    """Write the execution file (atomically, and only when its content changes: every Snakemake
    process, also each cluster job, writes the same content)."""
    from mlit.files import atomic_write_text

    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def merged(experiment: dict, execution_file: str | None, section: str | None) -> dict:
    """A job's full settings: its experiment settings (params) plus its section of the execution file
    (``training/<model>``, ``judge_training``, ``generation/<cell>``, ``judge``)."""
    if not execution_file or not section:
        return dict(experiment)
    tree = json.loads(Path(execution_file).read_text(encoding="utf-8"))
    for part in section.split("/"):
        if part not in tree:
            raise KeyError(f"{execution_file}: no section '{section}'; rerun Snakemake to rewrite the file")
        tree = tree[part]
    clash = sorted(set(tree) & set(experiment))
    if clash:
        raise ValueError(f"{execution_file}: section '{section}' sets {clash}, which this job's experiment settings "
                         "(its params) set too; an execution file never overrides an experiment setting. Rerun "
                         "Snakemake to write the file of this config")
    return {**experiment, **tree}
