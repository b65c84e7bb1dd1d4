"""Experiment vs launch settings: the config's sections (the schema) split the rules' params from how the
jobs run (mlit.run_settings: the execution file), and the training run's fingerprint follows the split."""

import json

import pytest

from mlit.train.checkpoints import run_fingerprint
from mlit.train.launch import per_node_command
from mlit.config import experiment_part
from mlit.run_settings import merged, write_if_changed

TRAINING = {"learning_rate": 2e-5, "num_train_epochs": 3, "effective_batch_size": 64, "per_device_train_batch_size": 4,
            "save_steps": 200, "logging_steps": 10, "nodes": 1, "gpus_per_node": 8, "deepspeed": "zero3"}


def test_the_split_is_a_partition_and_merges_back(tmp_path):
    experiment = experiment_part("training", TRAINING)
    execution = {key: value for key, value in TRAINING.items() if key not in experiment}
    assert set(experiment) == {"learning_rate", "num_train_epochs", "effective_batch_size"}
    write_if_changed(tmp_path / "execution.json", {"training": {"m-1": execution}})
    assert merged(experiment, str(tmp_path / "execution.json"), "training/m-1") == TRAINING
    with pytest.raises(KeyError, match="no section 'training/other'"):
        merged(experiment, str(tmp_path / "execution.json"), "training/other")
    assert merged(TRAINING, None, None) == TRAINING  # without the file: the settings as given


def test_the_execution_file_is_rewritten_only_when_it_changes(tmp_path):
    path = tmp_path / "execution.json"
    write_if_changed(path, {"judge": {"parallel": 8}})
    before = path.stat().st_mtime_ns
    write_if_changed(path, {"judge": {"parallel": 8}})
    assert path.stat().st_mtime_ns == before
    write_if_changed(path, {"judge": {"parallel": 2}})
    assert json.loads(path.read_text()) == {"judge": {"parallel": 2}}


def test_the_fingerprint_follows_the_experiment_and_the_checkpoint_layout():
    base = run_fingerprint("m", "sha", TRAINING, seed=1, world_size=8)
    for key in ("save_steps", "logging_steps", "gpus_per_node", "per_device_train_batch_size"):
        assert run_fingerprint("m", "sha", {**TRAINING, key: 1}, seed=1, world_size=8) == base, key
    # a changed experiment key never resumes from the old checkpoints
    assert run_fingerprint("m", "sha", {**TRAINING, "learning_rate": 1e-5}, seed=1, world_size=8) != base
    # nor does another checkpoint layout (ZeRO shards per rank and stage)
    assert run_fingerprint("m", "sha", TRAINING, seed=1, world_size=16) != base
    assert run_fingerprint("m", "sha", {**TRAINING, "deepspeed": "zero2"}, seed=1, world_size=8) != base


def test_several_nodes_start_one_launcher_per_node_through_srun():
    assert per_node_command({"nodes": 2}, env={}) == ["srun", "--nodes=2", "--ntasks-per-node=1", "--cpu-bind=none"]
    assert per_node_command({"nodes": 2}, env={"MLIT_PER_NODE_LAUNCHER": "1"}) == []  # already one per node
    assert per_node_command({"nodes": 1}, env={}) == [] == per_node_command({}, env={})


def test_the_slurm_mapping_of_a_training_job_is_one_function_of_the_config():
    import copy


    from mlit.cluster_requests import train_slurm_resources
    from mlit.config import Grid

    from conftest import REPO, demo_config

    config = demo_config()
    config["base_models"].append({**copy.deepcopy(config["base_models"][0]), "name": "two-nodes",
                                  "training": {"effective_batch_size": 16},
                                  "launch": {"training": {"nodes": 2, "gpus_per_node": 8,
                                                          "per_device_train_batch_size": 1}}})
    filled = Grid(config, repo_root=REPO).config
    assert train_slurm_resources(filled, "tiny-llama") == {"nodes": 1, "gres": "gpu:1", "tasks": None,
                                                           "tasks_per_gpu": None, "mpi": None}
    assert train_slurm_resources(filled, "two-nodes") == {"nodes": 2, "gres": "gpu:8", "tasks": 2, "tasks_per_gpu": 0,
                                                          "mpi": "srun"}
    config["launch"]["training"]["gpus_per_node"] = 0  # a CPU job asks for no GPU
    assert train_slurm_resources(Grid(config, repo_root=REPO).config, "tiny-llama")["gres"] is None


def test_the_judge_step_leaves_the_served_judges_training_to_its_own_step():

    from mlit.config import Grid

    from conftest import REPO, demo_config

    config = demo_config()
    grid = Grid(config, repo_root=REPO)
    assert grid.judge_params()["serve"] == {"base_model": "tiny-llama", "variants_per_question": 1}
    assert grid.config["judge"]["serve"]["training"]["max_steps"] == 50  # the config itself is untouched


def test_the_cell_id_has_one_owner_that_builds_and_parses_it():
    from mlit.config import Cell, DataCell
    from mlit.results.tables import cell_fields

    for size in (40, "full"):
        cell = Cell(base_model="mixtral-8x7b", data=DataCell(dataset="bactrian_x", composition="DEFRITES_sampled",
                                                             size=size, seed=42))
        assert Cell.parse(cell.cell_id) == cell
        assert cell_fields(cell.cell_id)["examples_per_language"] == (40 if size == 40 else None)
    with pytest.raises(ValueError, match="is not a cell id"):
        Cell.parse("a__b__c__d__e")


def test_an_execution_file_never_overrides_an_experiment_setting(tmp_path):
    path = tmp_path / "execution.json"
    write_if_changed(path, {"training": {"m-1": {"save_steps": 5, "learning_rate": 1.0}}})
    with pytest.raises(ValueError, match=r"section 'training/m-1' sets \['learning_rate'\], which this job's "
                                         r"experiment settings \(its params\) set too"):
        merged({"learning_rate": 2e-5}, str(path), "training/m-1")


def _execution_file_of(plan: str, rule_option: str) -> str:
    """The execution file a planned job is told to read (``-n -p``: its shell command)."""
    import re

    commands = [line for line in plan.splitlines() if rule_option in line and "--execution " in line]
    assert commands, plan[-2000:]
    return re.search(r"--execution (\S+)", commands[0]).group(1)


@pytest.mark.slow
def test_another_invocation_never_changes_the_settings_of_a_planned_grid(tmp_path):
    """Grid A ran a job and plans its judge jobs with launch.judge.timeout_s 7. A dry run of config B
    (timeout_s 3) writes nothing; a real run of B writes its own file: A's judge jobs still read 7. (On main
    every start rewrote results/execution_settings.json, and A's judge job used B's timeout.)"""
    import copy

    import yaml

    from conftest import demo_config, snakemake

    demo = demo_config()
    demo.update(compositions=["EN"], sizes=[8], eval_languages=["EN"])
    config_a, config_b = copy.deepcopy(demo), copy.deepcopy(demo)
    for config, timeout_s in ((config_a, 7), (config_b, 3)):
        config.setdefault("launch", {}).setdefault("judge", {})["timeout_s"] = timeout_s
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(config_a))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(config_b))
    data = "results/data/demo__EN__8__seed1/manifest.json"

    snakemake(tmp_path, "--cores", "1", data, configfile=tmp_path / "a.yaml")
    plan_a = snakemake(tmp_path, "-n", "-p", configfile=tmp_path / "a.yaml").stdout
    file_a = tmp_path / _execution_file_of(plan_a, "mlit judge ")
    assert json.loads(file_a.read_text())["judge"]["timeout_s"] == 7
    written = {path: path.read_text() for path in (tmp_path / "results").rglob("*.json")}

    plan_b = snakemake(tmp_path, "-n", "-p", configfile=tmp_path / "b.yaml").stdout
    assert {path: path.read_text() for path in (tmp_path / "results").rglob("*.json")} == written  # nothing written
    assert json.loads(file_a.read_text())["judge"]["timeout_s"] == 7
    snakemake(tmp_path, "--cores", "1", data, configfile=tmp_path / "b.yaml")  # a real start of B
    file_b = tmp_path / _execution_file_of(plan_b, "mlit judge ")
    assert file_b != file_a and json.loads(file_b.read_text())["judge"]["timeout_s"] == 3
    assert json.loads(file_a.read_text())["judge"]["timeout_s"] == 7
    assert _execution_file_of(snakemake(tmp_path, "-n", "-p", configfile=tmp_path / "a.yaml").stdout,
                              "mlit judge ") == str(file_a.relative_to(tmp_path))
