import copy

import pytest
import yaml

from mlit.cluster_requests import capped_request, job_cpus, job_resources, train_slurm_resources
from mlit.config import ConfigError, Grid
from mlit.langs import parse_composition

from conftest import REPO, snakemake

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def grid(**changes):
    config = copy.deepcopy(DEMO)
    config.update(changes)
    return Grid(config, repo_root=REPO)


def test_the_expansion_needs_only_the_config_and_each_datasets_items():
    """mlit.grid_expansion.expand: the cells from the filled config and the items counted beforehand (here
    given, for a dataset whose files do not exist), in the config's order; a size above the items refused."""
    from mlit.grid_expansion import expand
    from mlit.settings import with_defaults

    config = copy.deepcopy(DEMO)
    config["datasets"]["demo"]["local"] = "/nonexistent/instructions_{lang}.jsonl"
    config["base_models"].append({**copy.deepcopy(config["base_models"][0]), "name": "tuned", "evaluate_only": True})
    config = with_defaults(config)
    config.update(compositions=["EN", "DE"], sizes=[40, 160], seeds=[1, 2])
    expansion = expand(config, {"demo": 160})
    assert list(expansion.data_cells) == [f"demo__{composition}__{size}__seed{seed}" for composition in ("EN", "DE")
                                          for size in (40, 160) for seed in (1, 2)]
    assert list(expansion.cells) == [f"tiny-llama__{data_id}" for data_id in expansion.data_cells]
    assert list(expansion.evaluated_cells) == ["tuned__evaluated__as_is__none__seed0"]
    with pytest.raises(ConfigError, match=r"sizes: size 160 is larger than dataset 'demo', which has 159 items in every "
                                          r"one of \['EN', 'DE'\]"):
        expand(config, {"demo": 159})


def test_demo_grid_expands_every_axis():
    g = grid()
    assert len(g.cells) == len(DEMO["compositions"]) * len(DEMO["sizes"]) * len(DEMO["seeds"]) * len(DEMO["base_models"])
    cell = g.cells["tiny-llama__demo__ENDEFRITES__40__seed1"]
    assert cell.data.composition == "ENDEFRITES" and cell.data.size == 40
    assert g.data_spec(cell.data.data_id)["source"]["local"].startswith(str(REPO))
    assert g.cell_fields(cell.cell_id)["examples_per_language"] == 40
    full = grid(sizes=["full"])
    assert full.cell_fields("tiny-llama__demo__EN__full__seed1")["examples_per_language"] == 191


def test_compositions_parse():
    assert parse_composition("DEFRITES").languages == ("DE", "FR", "IT", "ES")
    assert parse_composition("ENDEFRITES_sampled").sampled
    for bad, message in [("ENXX", r"unknown language\(s\) \['XX'\]"), ("ENE", "not concatenated"),
                         ("EN_sampled", "at least two"), ("ENEN", "repeats")]:
        with pytest.raises(ValueError, match=message):
            parse_composition(bad)


def test_errors_name_key_value_and_allowed_values():
    with pytest.raises(ConfigError, match=r"compositions\[1\]: composition 'ENPL' has unknown language.*allowed"):
        grid(compositions=["EN", "ENPL"])
    with pytest.raises(ConfigError, match=r"sizes: size 5000 is larger than dataset 'demo', which has 191 items"):
        grid(sizes=[40, 5000])
    with pytest.raises(ConfigError, match=r"judge.serve.base_model: 'nope' is not a base model"):
        grid(judge={**DEMO["judge"], "serve": {"base_model": "nope"}})
    with pytest.raises(ConfigError, match=r"judge.base_url: is null \(or not set\) but judge.serve is not set"):
        grid(judge={"model": "gpt-4", "base_url": None})
    with pytest.raises(ConfigError, match=r"judge.base_url: is null \(or not set\) but judge.serve is not set"):
        grid(judge={"model": "gpt-4"})
    # a URL no judge job could reach is refused at planning, not after training and generation
    for url in ("", "api.openai.com/v1", "ftp://host/v1", " https://host/v1"):
        with pytest.raises(ConfigError, match="judge.base_url: is not an http:// or https:// URL"):
            grid(judge={"model": "gpt-4", "base_url": url})


def write(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("change, expected", [
    (lambda c: c.update(compositions=["EN", "ENPL"]), "composition 'ENPL' has unknown language"),
    (lambda c: c.update(eval_languages=["EN", "PL"]), "'PL' is not one of ['EN', 'DE', 'FR', 'IT', 'ES']"),
    (lambda c: c.update(sizes=[100000]), "size 100000 is larger than dataset 'demo'"),
    (lambda c: c.pop("seeds"), "'seeds' is a required property"),
])
def test_snakemake_stops_before_any_job(tmp_path, change, expected):
    config = copy.deepcopy(DEMO)
    change(config)
    result = snakemake(tmp_path, "-n", configfile=write(tmp_path, config), check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# --- where a broken file is: file, line, column -----------------------------------------------------

def local_files(tmp_path, german: bytes) -> dict:
    (tmp_path / "items_EN.jsonl").write_text('{"id": 1, "text": "a"}\n\n{"id": 2, "text": "b"}\n')
    (tmp_path / "items_DE.jsonl").write_bytes(german)
    return {"local": str(tmp_path / "items_{lang}.jsonl"), "id_field": "id"}


def test_local_dataset_counts_parallel_items(tmp_path):
    from mlit.config import count_local_items

    spec = local_files(tmp_path, '{"id": 2, "text": "ä"}\n\n{"id": 3}\n'.encode())
    assert count_local_items(spec, ("EN", "DE")) == 1
    assert count_local_items({"local": spec["local"]}, ("EN", "DE")) == 2  # no id_field: by position


def test_a_broken_json_line_in_a_local_dataset_names_file_line_and_fix(tmp_path):
    from mlit.config import count_local_items

    spec = local_files(tmp_path, b'{"id": 1}\n\n{"id": 2, "text": "b\n')  # a torn line
    with pytest.raises(ConfigError) as raised:
        count_local_items(spec, ("EN", "DE"))
    assert str(raised.value) == (
        f"datasets: local file for language DE (template '{spec['local']}'): {tmp_path / 'items_DE.jsonl'}:3: "
        "not valid JSON (Unterminated string starting at column 19); fix or remove that line "
        "(one JSON object per line)")
    (tmp_path / "items_DE.jsonl").write_text('{"id": 1}\n{"text": "no id"}\n')
    with pytest.raises(ConfigError, match=r"items_DE.jsonl:2: no field 'id' \(the dataset's id_field\)"):
        count_local_items(spec, ("EN", "DE"))


def test_a_non_utf8_byte_in_a_local_dataset_names_file_line_and_fix(tmp_path):
    from mlit.config import count_local_items

    spec = local_files(tmp_path, '{"id": 1}\n{"id": 2, "text": "Stra\u00dfe"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        count_local_items(spec, ("EN", "DE"))
    assert str(raised.value) == (
        f"datasets: local file for language DE (template '{spec['local']}'): {tmp_path / 'items_DE.jsonl'}:2: "
        "byte 0xdf at column 24 is not UTF-8; save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def run_snakemake(snakefile, workdir, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args],
                          capture_output=True, text=True, timeout=300)


def test_a_yaml_syntax_error_in_the_default_config_names_line_and_column(tmp_path):
    import shutil

    workflow = tmp_path / "workflow_copy"
    shutil.copytree(REPO / "config", workflow / "config")
    shutil.copy(REPO / "Snakefile", workflow / "Snakefile")
    with (workflow / "config" / "config.yaml").open("a") as handle:
        handle.write("\nsizes: [40\n")
    lines = (workflow / "config" / "config.yaml").read_text().splitlines()
    result = run_snakemake(workflow / "Snakefile", tmp_path / "work", "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config file {workflow / 'config' / 'config.yaml'} is not valid YAML" in output
    assert f'in "{workflow / "config" / "config.yaml"}", line {len(lines)}, column 8' in output, output


def test_snakemake_names_line_and_column_of_a_configfile_only_with_verbose(tmp_path):
    """A --configfile is read by Snakemake before the Snakefile runs, so the workflow cannot check it;
    Snakemake's message names no line, but `--verbose` shows the YAML parser's file, line and column."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("judge:\n  model: gpt-4\nsizes: [40\nseeds: [1]\n")
    result = run_snakemake(REPO / "Snakefile", tmp_path / "work", "-n", "--verbose", "--configfile", str(bad))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Config file is not valid JSON or YAML" in output
    assert f'in "{bad}", line 4, column 6' in output, output[-3000:]
    assert not (tmp_path / "work" / "results").exists()


# --- defaults: the schema's, filled in by validation (mlit.settings.with_defaults) -------------------------

MINIMAL = {  # only what the schema requires
    "datasets": {"demo": {"format": "bactrian", "local": "data/demo/instructions_{lang}.jsonl", "id_field": "id"}},
    "compositions": ["EN"], "sizes": [40], "seeds": [1], "eval_languages": ["EN"],
    "base_models": [{"name": "tiny", "build": {}}],
    "training": {"learning_rate": 1e-3, "effective_batch_size": 8},
    "generation": {"benchmark_dir": "data/mt_bench_x", "max_new_tokens": 8},
    "judge": {"model": "gpt-4", "base_url": "http://127.0.0.1:9/v1"},
}


def missing_defaults(schema: dict, node: dict, instance, where: str = "config") -> list[str]:
    """Keys with a schema default that the instance lacks, walking what it holds (objects, list items)."""
    if "$ref" in node:
        node = {**schema["definitions"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    missing = []
    if isinstance(instance, dict):
        for key, sub in node.get("properties", {}).items():
            if "default" in sub and key not in instance:
                missing.append(f"{where}.{key}")
            elif key in instance:
                missing += missing_defaults(schema, sub, instance[key], f"{where}.{key}")
        if isinstance(node.get("additionalProperties"), dict):
            for key, value in instance.items():
                missing += missing_defaults(schema, node["additionalProperties"], value, f"{where}.{key}")
    elif isinstance(instance, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(instance):
            missing += missing_defaults(schema, node["items"], item, f"{where}[{index}]")
    return missing


def test_a_minimal_config_gets_every_default_of_the_schema():
    from mlit.config import _schema, with_defaults

    config = with_defaults(copy.deepcopy(MINIMAL))
    assert missing_defaults(_schema(), _schema(), config) == []
    # objects the config leaves out, list items and each step's resources are filled too
    assert config["launch"]["resources"] == {"train": {"runtime": 240, "mem_mb": 32000},
                                             "generate": {"runtime": 60, "mem_mb": 16000, "gpus": 1},
                                             "judge": {"runtime": 120, "mem_mb": 4000}}
    model = config["base_models"][0]
    assert model["trust_remote_code"] is False and model["build"]["vocab_size"] == 4000
    assert model["training"] == {} and model["generation"] == {}
    assert model["launch"] == {"training": {}, "generation": {},
                               "resources": {"train": {}, "generate": {}, "judge": {}}}
    assert config["annotation"] == {"per_language": 50, "seed": 0} and config["chat_template"] == "opengptx"
    assert config["launch"]["training"]["nodes"] == 1 and config["training"]["system_message"] == "own_language"
    assert config["generation"]["backend"] == "hf" and config["judge"]["samples"] == 1
    grid = Grid(copy.deepcopy(MINIMAL), repo_root=REPO, dry_run=True)  # the grid fills them itself
    assert job_resources(grid.config, "generate", "tiny") == {"runtime": 60, "mem_mb": 16000, "gpus": 1}
    assert train_slurm_resources(grid.config, "tiny")["nodes"] == 1


def test_overrides_get_no_defaults_and_the_params_are_the_recipe_verbatim():
    config = copy.deepcopy(MINIMAL)
    config["training"].update(num_train_epochs=6, effective_batch_size=16)
    config["base_models"][0].update(training={"learning_rate": 2e-3},
                                    launch={"training": {"nodes": 2, "per_device_train_batch_size": 4},
                                            "resources": {"train": {"runtime": 30}}})
    grid = Grid(config, repo_root=REPO, dry_run=True)
    settings = grid.training_settings("tiny")
    assert settings["num_train_epochs"] == 6 and settings["nodes"] == 2 and settings["max_length"] == 1024
    assert job_resources(grid.config, "train", "tiny") == {"runtime": 30, "mem_mb": 32000}
    # the params: the training recipe (its defaults filled), the base model's overrides merged: nothing of launch
    assert grid.training_recipe("tiny") == {**grid.config["training"], "learning_rate": 2e-3}
    assert not set(grid.training_recipe("tiny")) & set(grid.execution_settings()["training"]["tiny"])
    assert {**grid.training_recipe("tiny"), **grid.execution_settings()["training"]["tiny"]} == settings


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["base_models"][0].update(launch={"training": {"nodes": "two"}}),
     r"base_models\[0\]\.launch\.training\.nodes: 'two' is not of type 'integer'"),
    (lambda c: c.update(launch={"resources": {"train": {"runtime": "long"}}}),
     r"launch\.resources\.train\.runtime: 'long' is not of type"),
    # transformers reads warmup_steps >= 1 as steps: 1.0 (meant as the whole run) would be one step
    (lambda c: c["training"].update(warmup_steps=1.0), r"training\.warmup_steps: 1\.0 is read by transformers as 1 step"),
    (lambda c: c["training"].update(warmup_steps=2.5), r"training\.warmup_steps: 2\.5 is read by transformers as 2 step"),
    (lambda c: c["training"].update(warmup_steps=-0.1), r"training\.warmup_steps: -0\.1 is less than the minimum of 0"),
    (lambda c: c["judge"].update(samples=0), r"judge\.samples: 0 is less than the minimum of 1"),
    (lambda c: c["base_models"][0].update(name="a b"), r"base_models\[0\]\.name: 'a b' is not a safe name"),
])
def test_a_wrong_value_names_its_key(change, expected):
    config = copy.deepcopy(MINIMAL)
    change(config)
    with pytest.raises(ConfigError, match=expected):
        Grid(config, repo_root=REPO, dry_run=True)


def alias_bomb(levels=9, width=9) -> str:
    """A YAML value a few hundred bytes long that expands to width**levels strings."""
    node = "&a0 [" + ", ".join(["lol"] * width) + "]"
    for level in range(1, levels):
        node = f"&a{level} [{node}, " + ", ".join([f"*a{level - 1}"] * (width - 1)) + "]"
    return node


def test_a_yaml_alias_bomb_is_refused_before_the_schema_expands_it():
    import time

    config = copy.deepcopy(DEMO)
    config["judge"]["model"] = yaml.safe_load(f"model: {alias_bomb()}")["model"]  # 9**9 strings, shared lists
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"config: more than 100000 values once its YAML aliases .* are expanded, "
                                          r"near judge\.model"):
        Grid(config, repo_root=REPO)
    assert time.perf_counter() - started < 30  # main spent minutes and 3.5 GB in jsonschema's message


@pytest.mark.parametrize("key, value, expected", [
    ("training.learning_rate", float("nan"), r"training\.learning_rate: nan is not a finite number"),
    ("training.learning_rate", float("inf"), r"training\.learning_rate: inf is not a finite number"),
    ("judge.temperature", float("nan"), r"judge\.temperature: nan is not a finite number"),
    ("training.warmup_ratio", float("-inf"), r"training\.warmup_ratio: -inf is not a finite number"),
])
def test_non_finite_numbers_are_refused_naming_the_key(key, value, expected):
    config = copy.deepcopy(DEMO)
    section, name = key.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=expected):
        Grid(config, repo_root=REPO)


def test_sizes_must_be_whole_numbers_and_languages_listed_once():
    with pytest.raises(ConfigError, match=r"sizes\[1\]: 40\.0 is not a whole number of examples; write 40"):
        grid(sizes=[20, 40.0])
    config = copy.deepcopy(DEMO)
    config["datasets"]["demo"]["sizes"] = [40.0]
    with pytest.raises(ConfigError, match=r"datasets\.demo\.sizes\[0\]: 40\.0 is not a whole number"):
        Grid(config, repo_root=REPO)
    with pytest.raises(ConfigError, match=r"eval_languages\[2\]: 'EN' is listed twice"):
        grid(eval_languages=["EN", "DE", "EN"])


def test_dataset_files_must_be_regular_files(tmp_path):
    import os
    import time

    for lang in ("DE", "FR", "IT", "ES"):
        (tmp_path / f"i_{lang}.jsonl").write_text((REPO / "data" / "demo" / f"instructions_{lang}.jsonl").read_text())
    os.mkfifo(tmp_path / "i_EN.jsonl")  # a reader would wait for a writer forever
    config = copy.deepcopy(DEMO)
    config["datasets"]["demo"]["local"] = str(tmp_path / "i_{lang}.jsonl")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"local file for language EN .*i_EN\.jsonl is a FIFO; give a regular file"):
        Grid(copy.deepcopy(config), repo_root=REPO)
    (tmp_path / "i_EN.jsonl").unlink()
    (tmp_path / "i_EN.jsonl").symlink_to("/dev/zero")  # a reader would fill the memory
    with pytest.raises(ConfigError, match=r"i_EN\.jsonl is a device; give a regular file"):
        Grid(copy.deepcopy(config), repo_root=REPO)
    assert time.perf_counter() - started < 30


def test_a_local_dataset_path_must_name_one_file_per_language(tmp_path):
    config = copy.deepcopy(DEMO)
    config["datasets"]["demo"]["local"] = str(REPO / "data" / "demo" / "instructions_EN.jsonl")  # no {lang}
    with pytest.raises(ConfigError, match=r"datasets\.demo\.local: languages EN and DE resolve to the same file"):
        Grid(config, repo_root=REPO)
    for lang in ("EN", "FR", "IT", "ES"):
        (tmp_path / f"i_{lang}.jsonl").write_text((REPO / "data" / "demo" / f"instructions_{lang}.jsonl").read_text())
    (tmp_path / "i_DE.jsonl").symlink_to(tmp_path / "i_EN.jsonl")  # DE trained on the English file
    config["datasets"]["demo"]["local"] = str(tmp_path / "i_{lang}.jsonl")
    with pytest.raises(ConfigError, match=r"datasets\.demo\.local: languages EN and DE resolve to the same file"):
        Grid(config, repo_root=REPO)


def test_a_key_typo_names_the_closest_key():
    config = copy.deepcopy(DEMO)
    config["training"]["learning_rat"] = 1.0e-3
    with pytest.raises(ConfigError, match=r"training: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        Grid(config)
    config = copy.deepcopy(DEMO)
    config["compositons"] = config.pop("compositions")
    with pytest.raises(ConfigError, match=r"did you mean 'compositions'"):
        Grid(config)


def test_a_hub_id_under_path_points_to_hub(tmp_path):
    config = copy.deepcopy(DEMO)
    config["base_models"] = [{"name": "m", "path": "mistralai/Mixtral-8x7B-v0.1", "chat_template": "opengptx"}]
    with pytest.raises(ConfigError, match=r"base_models\[m\].path: .* if 'mistralai/Mixtral-8x7B-v0.1' is a hub id, "
                                          r"it goes under hub: \(base_models\[m\].hub: mistralai/Mixtral-8x7B-v0.1"):
        Grid(config, repo_root=tmp_path)


def test_a_model_folder_with_only_config_json_names_the_missing_tokenizer_files(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"model_type": "llama"}')
    config = copy.deepcopy(DEMO)
    config["base_models"] = [{"name": "m", "path": str(tmp_path / "half"), "chat_template": "opengptx"}]
    with pytest.raises(ConfigError, match=r"base_models\[m\].path: .*half' has config.json but no tokenizer files "
                                          r"\(none of tokenizer.json, tokenizer.model.*\); no weights"):
        Grid(config, repo_root=tmp_path)


def test_the_workflow_names_the_config_file_of_a_typo(tmp_path):
    config = copy.deepcopy(DEMO)
    config["judge"]["temprature"] = config["judge"].pop("temperature")
    configfile = tmp_path / "mine.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=configfile, check=False)
    assert result.returncode != 0
    assert f"config error in {configfile}: judge: unknown key 'temprature' (did you mean 'temperature'?)" \
        in result.stderr + result.stdout


def test_a_retry_asks_no_more_than_the_cluster_has_and_gpu_jobs_get_their_cpus():
    resources = {"train": {"runtime": 600, "mem_mb": 300000, "cpus_per_gpu": 6, "max_runtime": 1000,
                           "max_mem_mb": 500000},
                 "generate": {"runtime": 60, "mem_mb": 8000, "gpus": 2, "cpus_per_gpu": 4}}
    config = copy.deepcopy(DEMO)
    config["launch"]["training"].update(gpus_per_node=4, per_device_train_batch_size=2)
    config["launch"]["judge_training"] = {"per_device_train_batch_size": 2}
    filled = Grid({**config, "launch": {**config["launch"], "resources": resources}}).config
    assert [capped_request(filled, "train", "tiny-llama", attempt) for attempt in (1, 2, 3)] == [
        {"runtime": 600, "mem_mb": 300000}, {"runtime": 1000, "mem_mb": 500000}, {"runtime": 1000, "mem_mb": 500000}]
    assert capped_request(filled, "generate", "tiny-llama", 3) == {"runtime": 180, "mem_mb": 24000}  # no maximum set
    # the job step's CPUs: GPUs per node x cpus_per_gpu (train: launch.training.gpus_per_node; generate:
    # launch.resources.generate.gpus)
    assert (job_cpus(filled, "train", "tiny-llama"), job_cpus(filled, "generate", "tiny-llama"),
            job_cpus(filled, "judge")) == (24, 8, None)
    too_long = {"train": {**resources["train"], "runtime": 1200}}
    with pytest.raises(ConfigError, match=r"launch.resources.train.runtime=1200 is above max_runtime=1000"):
        Grid({**copy.deepcopy(DEMO), "launch": {**copy.deepcopy(DEMO["launch"]), "resources": too_long}})


def test_padding_free_needs_packing_and_flash_attention_needs_bf16():
    with pytest.raises(ConfigError, match=r"training.padding_free: true without packing.*packing: true"):
        grid(training={**DEMO["training"], "padding_free": True})
    with pytest.raises(ConfigError, match=r"attn_implementation: flash_attention_2 needs bf16"):
        grid(training={**DEMO["training"], "bf16": False},
             launch={**DEMO["launch"], "training": {**DEMO["launch"]["training"], "attn_implementation": "flash_attention_2"}})


def test_group_by_length_orders_batches_by_length_and_attention_is_a_setting(tmp_path):
    from mlit.train.sft import sft_config

    args = sft_config({"learning_rate": 1e-3, "effective_batch_size": 8, "group_by_length": True}, tmp_path, seed=0)
    assert args.train_sampling_strategy == "group_by_length"
    assert sft_config({"learning_rate": 1e-3, "effective_batch_size": 8}, tmp_path,
                      seed=0).train_sampling_strategy == "random"


def test_further_judges_are_filled_checked_and_reach_their_jobs_launch():
    g = grid()
    (name, judge), = g.extra_judges.items()
    assert judge["share"] == 0.25 and judge["samples"] == 1 and judge["off_language"] == "report"  # the schema's
    assert g.extra_judge_params(name) == {key: value for key, value in judge.items() if key not in ("share", "seed")}
    assert g.judge_pairs() == [(name, "main")]
    assert g.execution_settings()["judges"][name] == g.config["launch"]["judge"]
    launch = copy.deepcopy(DEMO["launch"])
    launch["judges"] = {name: {"api_key_env": "OPEN_JUDGE_KEY"}}
    two = grid(judges={**DEMO["judges"], "second": {"model": "m2", "base_url": "http://localhost:8001/v1"}},
               launch=launch)
    assert two.judge_pairs() == [(name, "main"), ("second", "main"), ("second", name)]
    assert two.extra_judge_launch(name)["api_key_env"] == "OPEN_JUDGE_KEY"
    assert two.extra_judge_launch("second")["api_key_env"] == "OPENAI_API_KEY"  # launch.judge's
    assert "judges" not in grid(judges={}).execution_settings()  # a single-judge config's file as before


@pytest.mark.parametrize("judges, launch_judges, message", [
    ({"main": {"model": "m"}}, {}, r"judges.main: .main. is taken"),  # the main judge's name in paths
    ({"x": {"model": "m", "share": 0}}, {}, r"judges.x.share"),
    ({"x": {"model": "m", "base_url": ""}}, {}, r"judges.x.base_url"),
    ({"x": {"model": "m"}}, {"y": {"parallel": 2}}, r"launch.judges.y: no judge 'y' in the judges section"),
])
def test_a_further_judge_that_cannot_run_is_refused_naming_its_key(judges, launch_judges, message):
    launch = copy.deepcopy(DEMO["launch"])
    launch["judges"] = launch_judges
    with pytest.raises(ConfigError, match=message):
        grid(judges=judges, launch=launch)


def test_a_further_judge_served_from_a_demo_judge_the_config_does_not_train_is_refused():
    judge = {**DEMO["judge"], "base_url": "http://localhost:8000/v1"}
    judge.pop("serve")
    with pytest.raises(ConfigError, match=r"judges.demo-judge-no-rule.base_url: null serves the demo judge model"):
        grid(judge=judge)


def test_a_further_judge_grades_with_the_main_judges_keys_and_defaults():
    """judges.<name> repeats the judge section's grading keys (the judge step reads them the same way): the
    same keys, types and defaults, less serve, plus share and seed."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    main, further = schema["properties"]["judge"]["properties"], schema["definitions"]["extra_judge"]["properties"]
    assert set(further) == set(main) - {"serve"} | {"share", "seed"}
    for key in set(main) - {"serve"}:
        assert {k: v for k, v in further[key].items() if k != "description"} == \
               {k: v for k, v in main[key].items() if k != "description"}, key
