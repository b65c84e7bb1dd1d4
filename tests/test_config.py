import copy

import pytest
import yaml

from mlit.config import ConfigError, Grid
from mlit.langs import parse_composition

from conftest import REPO, snakemake

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def grid(**changes):
    config = copy.deepcopy(DEMO)
    config.update(changes)
    return Grid(config, repo_root=REPO)


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
    with pytest.raises(ConfigError, match="judge.base_url: is null but judge.serve is not set"):
        grid(judge={"model": "gpt-4", "base_url": None})


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
