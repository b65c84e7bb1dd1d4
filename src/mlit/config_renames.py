"""The config keys of the layout before the recipe/launch split, and the key each one became.

A config of the old layout is refused before anything else, with one line per old key naming its new
place (``old_keys``). To move a key: add a row to ``RENAMED`` (section-relative: it applies to the
global section and to each place that overrides it, ``base_models[].training`` and so on).
"""

from __future__ import annotations

LAUNCH_TRAINING = ("per_device_batch_size", "deepspeed", "nodes", "gpus_per_node", "processes_per_node",
                   "main_process_port", "save_steps", "save_total_limit", "logging_steps", "activation_checkpointing",
                   "preempt_signal_minutes", "checkpoint_grace_s", "max_lost_minutes", "attn_implementation",
                   "communication_env", "report_to")
LAUNCH_GENERATION = ("vllm_python", "vllm_gpu_memory_utilization", "vllm_enforce_eager", "vllm_submission",
                     "hf_compile", "hf_device_map")
LAUNCH_JUDGE = ("parallel", "timeout_s", "prices_per_1k", "batch_poll_s", "max_retries", "retry_initial_s",
                "api_key_env", "mode")

# (old section, old key) -> (new section, new key, note). A section is "training", "generation", "judge" or
# "" (the top level of the config, or of a base model); "launch.X" is the launch section of the same place.
RENAMED: dict[tuple[str, str], tuple[str, str, str]] = {
    ("training", "epochs"): ("training", "num_train_epochs", "TRL's name"),
    ("training", "lr_scheduler"): ("training", "lr_scheduler_type", "TRL's name"),
    ("training", "warmup_ratio"): ("training", "warmup_steps",
                                   "a fraction below 1 of the run, or a whole number of steps, as transformers reads it"),
    ("training", "liger_kernel"): ("training", "use_liger_kernel", "TRL's name"),
    ("training", "gradient_accumulation_steps"): (
        "training", "effective_batch_size",
        "examples per optimizer step: per-device batch x accumulation x processes; accumulation is derived from it"),
    ("training", "per_device_batch_size"): ("launch.training", "per_device_train_batch_size", "TRL's name; how "
                                            "training.effective_batch_size is split"),
    **{("training", key): ("launch.training", key, "") for key in LAUNCH_TRAINING if key != "per_device_batch_size"},
    **{("generation", key): ("launch.generation", key, "") for key in LAUNCH_GENERATION},
    **{("judge", key): ("launch.judge", key, "") for key in LAUNCH_JUDGE},
    ("", "resources"): ("launch", "resources", ""),
}


def _places(config: dict) -> list[tuple[str, dict, str]]:
    """(where, the place's top-level mapping, the prefix of its launch section) for each place where the
    sections above appear: the config, each base model, the served judge."""
    places = [("", config, "launch")]
    models = config.get("base_models")
    if isinstance(models, list):
        places += [(f"base_models[{index}].", model, f"base_models[{index}].launch")
                   for index, model in enumerate(models) if isinstance(model, dict)]
    return places


def old_keys(config) -> list[str]:
    """One line per key of the old layout in ``config``: ``old -> new (note)``."""
    if not isinstance(config, dict):
        return []
    found = []
    for where, place, launch in _places(config):
        for (section, key), (new_section, new_key, note) in RENAMED.items():
            holder = place if section == "" else place.get(section)
            if not isinstance(holder, dict) or key not in holder:
                continue
            if section == "":
                target = f"{launch}.{new_key}"
            elif new_section.startswith("launch."):
                target = f"{launch}.{new_section.removeprefix('launch.')}.{new_key}"
            else:
                target = f"{where}{new_section}.{new_key}"
            old = f"{where}{section + '.' if section else ''}{key}"
            found.append(f"{old} -> {target}" + (f" ({note})" if note else ""))
    serve = config.get("judge", {}).get("serve") if isinstance(config.get("judge"), dict) else None
    if isinstance(serve, dict) and isinstance(serve.get("training"), dict):
        for (section, key), (new_section, new_key, note) in RENAMED.items():
            if section != "training" or key not in serve["training"]:
                continue
            target = (f"launch.judge_training.{new_key}" if new_section == "launch.training"
                      else f"judge.serve.training.{new_key}")
            found.append(f"judge.serve.training.{key} -> {target}" + (f" ({note})" if note else ""))
    return found


def check_layout(config) -> None:
    """Raise ValueError listing every key of the old layout with its new place."""
    found = old_keys(config)
    if found:
        raise ValueError("the config uses keys of the layout before the recipe/launch split (config/README.md); "
                         "move each:\n  " + "\n  ".join(found))
