"""Careless and hostile config values: no command runs from a config value, names that become paths
are safe, and nothing outside a step's own output is ever deleted."""

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

from mlit.config import ConfigError, Grid
from mlit.safe_paths import UnsafePathError, publish_dir, remove_tree

from conftest import REPO, demo_config, snakemake

DEMO = demo_config()


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("name", ["x$(touch pwned)", "..", "a b", "it's", "a/b", "a__b", "_lead", ""])
def test_unsafe_names_are_refused(name, tmp_path):
    config = copy.deepcopy(DEMO)
    config["base_models"][0]["name"] = name
    config["judge"]["serve"]["base_model"] = name
    with pytest.raises(ConfigError, match=r"base_models\[0\]\.name: .* is not a safe name"):
        Grid(config, repo_root=REPO)
    config = copy.deepcopy(DEMO)
    config["datasets"] = {name: config["datasets"]["demo"]}
    with pytest.raises(ConfigError, match=r"is not a safe name"):
        Grid(config, repo_root=REPO)


def test_the_schema_refuses_unsafe_names_before_any_job(tmp_path):
    config = copy.deepcopy(DEMO)
    config["datasets"] = {"x$(touch pwned)": config["datasets"]["demo"]}
    result = snakemake(tmp_path, "--cores", "1", configfile=write_config(tmp_path, config), check=False)
    assert result.returncode != 0 and "x$(touch pwned)" in result.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "results").exists()
    config = copy.deepcopy(DEMO)
    config["base_models"][0]["name"] = ".."
    config["judge"]["serve"]["base_model"] = ".."
    result = snakemake(tmp_path, "--cores", "1", configfile=write_config(tmp_path, config), check=False)
    assert result.returncode != 0 and "'..'" in result.stderr


@pytest.mark.slow
def test_paths_with_shell_characters_run_no_command(tmp_path, tiny_base_model):
    """A dataset file and a base model directory whose paths hold `$(touch ...)`: the data and
    model steps run on them, and no command from the path ever runs."""
    data_dir = tmp_path / "d$(touch pwned-data) 'x'"
    data_dir.mkdir()
    for lang in ("EN", "DE"):
        shutil.copy(REPO / "data" / "demo" / f"instructions_{lang}.jsonl", data_dir / f"instructions_{lang}.jsonl")
    model_dir = tmp_path / "m$(touch pwned-model)"
    shutil.copytree(tiny_base_model, model_dir)
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN", "DE"], sizes=[8], eval_languages=["EN"])
    config["datasets"]["demo"]["local"] = str(data_dir / "instructions_{lang}.jsonl")
    config["base_models"] = [{"name": "local-model", "path": str(model_dir), "chat_template": "model"}]
    config["judge"] = {"model": "x", "base_url": "http://127.0.0.1:9/v1"}
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", "1", "results/data/demo__EN__8__seed1/train.jsonl",
              "results/base_models/local-model", configfile=write_config(workdir, config))
    assert (workdir / "results" / "base_models" / "local-model" / "mlit_base.json").exists()
    assert (workdir / "results" / "data" / "demo__EN__8__seed1" / "train.jsonl").read_text().count("\n") == 8
    for where in (tmp_path, workdir, Path.cwd(), data_dir.parent):
        assert not list(where.glob("pwned*")), where


def test_nothing_outside_a_steps_own_output_is_deleted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    (results / "base_models").mkdir(parents=True)
    (results / "judge_cache").mkdir()
    (results / "judge_cache" / "paid.json").write_text("{}")
    for unsafe in ("results/base_models/..", str(results / "base_models" / ".."), ".", str(tmp_path), "/"):
        with pytest.raises(UnsafePathError):
            remove_tree(unsafe)
    escape = results / "base_models" / "evil"
    escape.symlink_to(results)  # a model directory that is a symlink leading out of its parent
    with pytest.raises(UnsafePathError, match="outside"):
        remove_tree(escape)
    with pytest.raises(UnsafePathError, match="outside"):
        publish_dir(results / "base_models" / "new.tmp", escape)
    with pytest.raises(UnsafePathError):
        publish_dir(results / "base_models" / "new.tmp", results / "base_models" / "..")
    assert (results / "judge_cache" / "paid.json").exists()
    (results / "base_models" / "ok").mkdir()
    remove_tree(results / "base_models" / "ok")
    assert not (results / "base_models" / "ok").exists() and (results / "judge_cache").exists()


def test_the_model_builder_cannot_remove_results(tmp_path, monkeypatch):
    from mlit.model.tiny import build_base_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "judge_cache").mkdir(parents=True)
    with pytest.raises(UnsafePathError):
        build_base_model({"vocab_size": 300}, [str(REPO / "data" / "demo" / "instructions_EN.jsonl")],
                         Path("results/base_models/.."))
    assert (tmp_path / "results" / "judge_cache").is_dir()
    assert os.listdir(tmp_path / "results") == ["judge_cache"]


def test_every_value_in_a_shell_command_is_quoted():
    """A static check of the rule files: every placeholder of a shell command that can hold a config
    value or a path ends in `:q`."""
    import re

    unquoted = []
    for rule_file in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = rule_file.read_text()
        for block in re.findall(r"shell:\n((?:\s+\".*\"\n)+)", text):
            for placeholder in re.findall(r"\{([^{}]+)\}", block):
                if placeholder in ("MLIT", "RESULTS", "threads") or placeholder.endswith(":q"):
                    continue
                unquoted.append(f"{rule_file.name}: {{{placeholder}}}")
    assert not unquoted, unquoted


def test_a_dry_run_refuses_a_fifo_dataset_and_an_alias_bomb_instead_of_hanging(tmp_path):
    """`snakemake -n` with a dataset file that is a FIFO (main waited for a writer forever) or a config
    holding a YAML alias bomb (main grew to 3.5 GB in jsonschema's error message): refused, naming the key.
    The timeout is what main ran into, not a speed claim."""
    import os

    from test_config import alias_bomb

    data = tmp_path / "data"
    data.mkdir()
    for lang in ("DE", "FR", "IT", "ES"):
        shutil.copy(REPO / "data" / "demo" / f"instructions_{lang}.jsonl", data / f"instructions_{lang}.jsonl")
    os.mkfifo(data / "instructions_EN.jsonl")
    config = copy.deepcopy(DEMO)
    config["datasets"]["demo"]["local"] = str(data / "instructions_{lang}.jsonl")
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path, config), check=False, timeout=300)
    assert result.returncode != 0
    assert f"{data / 'instructions_EN.jsonl'} is a FIFO; give a regular file" in result.stdout + result.stderr

    bomb = (REPO / "config" / "config.yaml").read_text().replace("  model: mlit-demo-judge\n",
                                                                  f"  model: {alias_bomb()}\n")
    assert bomb.count("*a7") == 8  # the bomb is in the file
    (tmp_path / "bomb.yaml").write_text(bomb)
    result = snakemake(tmp_path, "-n", configfile=tmp_path / "bomb.yaml", check=False, timeout=300)
    assert result.returncode != 0
    assert "config: more than 100000 values once its YAML aliases (&/*) are expanded, near judge.model" \
        in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# (judge key, value, the secret in it, the start of the message): a key pasted where a name or URL goes
SECRETS_IN_THE_CONFIG = [
    ("api_key_env", "sk-proj-PLANTED0123456789abcdef", "PLANTED0123456789", "launch.judge.api_key_env: is not an environment"),
    ("api_key_env", "planted0key0123456789abcdef", "planted0key0123456789", "launch.judge.api_key_env: is not an environment"),
    ("base_url", "https://judge:PLANTEDpw0123@api.example.com/v1", "PLANTEDpw0123",
     "judge.base_url: https://[REDACTED]@api.example.com/v1 holds a credential"),
    ("base_url", "https://api.example.com/v1?api-key=PLANTEDq0123", "PLANTEDq0123",
     "judge.base_url: https://api.example.com/v1?api-key=[REDACTED] holds a credential"),
]


@pytest.mark.parametrize("key, value, secret, message", SECRETS_IN_THE_CONFIG)
def test_a_key_in_the_judge_config_is_refused_without_showing_it(key, value, secret, message):
    config = copy.deepcopy(DEMO)
    (config["launch"]["judge"] if key == "api_key_env" else config["judge"])[key] = value
    with pytest.raises(ConfigError) as error:
        Grid(config, repo_root=REPO)
    assert str(error.value).startswith(message) and secret not in str(error.value)
    assert "launch.judge.api_key_env" in str(error.value)  # the hint: where the key goes


def test_a_hand_run_judge_refuses_a_key_in_its_settings():
    from mlit.judge.client import JudgeSettings

    with pytest.raises(ValueError, match="launch.judge.api_key_env: is not an environment variable name"):
        JudgeSettings.from_config({"model": "m", "api_key_env": "sk-PLANTED0123456789"}, "http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match=r"judge.base_url: http://\[REDACTED\]@127.0.0.1:1/v1 holds"):
        JudgeSettings.from_config({"model": "m"}, "http://u:PLANTED0123@127.0.0.1:1/v1")
    assert JudgeSettings.from_config({"model": "m"}, "https://x.example/v1?api-version=2024-06-01").base_url


@pytest.mark.parametrize("key, value, secret, message", SECRETS_IN_THE_CONFIG)
def test_a_key_in_the_judge_config_stops_snakemake_and_reaches_no_file(tmp_path, key, value, secret, message):
    """A dry run (which wrote results/execution_settings.json and planned jobs whose params hold the
    URL) and a run: both stop at the config; the key is in no output, log or file of the workdir."""
    config = copy.deepcopy(DEMO)
    (config["launch"]["judge"] if key == "api_key_env" else config["judge"])[key] = value
    configfile = write_config(tmp_path, config)  # outside the workdir: the one file that holds the key
    workdir = tmp_path / "work"
    workdir.mkdir()
    for args in (["-n"], ["--cores", "1"]):
        result = snakemake(workdir, *args, configfile=configfile, check=False)
        printed = result.stdout + result.stderr
        assert result.returncode != 0 and message in printed and secret not in printed
    assert not (workdir / "results").exists()
    assert [path for path in workdir.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()] == []
