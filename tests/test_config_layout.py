"""The config's two parts: the experiment (recipe, data, sampling, judge: the rules' params) and the launch
(how jobs run); an old-style config names the new key of each old one."""

import copy

import pytest
import yaml

from mlit.config import ConfigError, Grid, section_defaults
from mlit.config_renames import RENAMED, old_keys

from conftest import REPO

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_keys(section: str) -> set[str]:
    """The keys a dotted section ('training', 'launch.training', ...) of the schema allows."""
    node = SCHEMA
    for part in section.split("."):
        node = node["properties"][part]
    if "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return set(node["properties"])


def test_every_renamed_key_points_at_a_key_of_the_schema_and_is_gone_from_its_old_place():
    for (section, key), (new_section, new_key, _) in RENAMED.items():
        assert new_key in schema_keys(new_section), (section, key)
        if section:
            assert key not in schema_keys(section) or (section, key) == ("generation", "batch_size"), (section, key)


def test_an_old_style_config_names_the_new_key_of_each_old_one():
    old = yaml.safe_load((REPO / "tests" / "assets" / "config-before-launch-split.yaml").read_text())
    with pytest.raises(ConfigError) as error:
        Grid(copy.deepcopy(old), repo_root=REPO, dry_run=True)
    message = str(error.value)
    for line in ("training.epochs -> training.num_train_epochs",
                 "training.lr_scheduler -> training.lr_scheduler_type",
                 "training.warmup_ratio -> training.warmup_steps",
                 "training.per_device_batch_size -> launch.training.per_device_train_batch_size",
                 "training.save_steps -> launch.training.save_steps",
                 "judge.api_key_env -> launch.judge.api_key_env",
                 "judge.parallel -> launch.judge.parallel",
                 "resources -> launch.resources",
                 "judge.serve.training.epochs -> judge.serve.training.num_train_epochs",
                 "judge.serve.training.per_device_batch_size -> launch.judge_training.per_device_train_batch_size"):
        assert line in message, line
    assert message.count("\n") == len(old_keys(old))  # one line per old key, nothing else refused first
    per_model = {"name": "m", "build": {}, "training": {"nodes": 2, "liger_kernel": True},
                 "generation": {"vllm_python": "/x"}, "resources": {"train": {"runtime": 9}}}
    assert old_keys({"base_models": [per_model]}) == [
        "base_models[0].training.liger_kernel -> base_models[0].training.use_liger_kernel (TRL's name)",
        "base_models[0].training.nodes -> base_models[0].launch.training.nodes",
        "base_models[0].generation.vllm_python -> base_models[0].launch.generation.vllm_python",
        "base_models[0].resources -> base_models[0].launch.resources"]
    # main's keys of the old training section that are launch keys now (issues 21 and 29); max_runtime and
    # max_mem_mb move with the whole resources section
    moved = {"training": {"report_to": "wandb", "attn_implementation": "eager",
                          "communication_env": {"NCCL_IB_HCA": "mlx5"}, "group_by_length": True},
             "resources": {"train": {"max_runtime": 60}}}
    assert old_keys(moved) == ["training.attn_implementation -> launch.training.attn_implementation",
                               "training.communication_env -> launch.training.communication_env",
                               "training.report_to -> launch.training.report_to",
                               "resources -> launch.resources"]


def test_the_shipped_configs_are_of_the_new_layout():
    for name in ("config.yaml", "paper.yaml", "smoke-gpu.yaml"):
        assert old_keys(yaml.safe_load((REPO / "config" / name).read_text())) == [], name


def test_params_are_the_experiment_sections_and_the_launch_reaches_jobs_apart():
    grid = Grid(copy.deepcopy(DEMO), repo_root=REPO)
    recipe, launch = grid.training_recipe("tiny-llama"), grid.training_launch("tiny-llama")
    assert set(recipe) == schema_keys("training") and set(launch) == schema_keys("launch.training")
    assert recipe == grid.config["training"]  # verbatim (defaults filled by the schema)
    generation = grid.generation_settings("tiny-llama")
    assert set(generation) == schema_keys("generation")
    assert set(grid.execution_settings()["generation"][next(iter(grid.cells))]) == \
        schema_keys("launch.generation") | {"gpus"}
    assert set(grid.judge_params()) == schema_keys("judge")
    assert set(grid.execution_settings()["judge"]) == schema_keys("launch.judge")
    # the served judge: its recipe over the base model's; its launch over the base model's
    assert grid.judge_training_recipe()["max_steps"] == 50 and "training" not in grid.judge_params()["serve"]


def test_a_job_given_an_old_or_unknown_key_stops_naming_the_new_one():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epochs', 'per_device_batch_size'\].*epochs -> "
                                          r"training\.num_train_epochs, per_device_batch_size -> "
                                          r"launch\.training\.per_device_train_batch_size"):
        section_defaults("training", {"learning_rate": 1e-3, "epochs": 2, "per_device_batch_size": 4})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tempreature'\].*tempreature \(no such key\)"):
        section_defaults("judge", {"model": "m", "tempreature": 0})


def test_config_readme_documents_every_key_of_the_schema():
    """config/README.md is what the schema gives (python -m mlit.config_doc rewrites it)."""
    from mlit.config_doc import README, render

    written = README.read_text(encoding="utf-8")
    assert written == render(), "config/README.md is stale: run `python -m mlit.config_doc`"
    for section in ("training", "generation", "judge", "launch.training", "launch.generation", "launch.judge"):
        for key in schema_keys(section):
            assert f"| `{section}.{key}` |" in written, f"{section}.{key}"
