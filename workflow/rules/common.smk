# Config validation and the grid. Everything below is expanded from `config` (the only source).
import json
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from mlit.config import ConfigError, Grid  # noqa: E402

validate(config, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
try:
    GRID = Grid(config, repo_root=REPO)
except ConfigError as error:
    raise WorkflowError(f"config error: {error}") from None

RESULTS = "results"
MLIT = f"{sys.executable} -m mlit"
EVAL_LANGS = GRID.eval_languages
BENCH = str(GRID.benchmark_dir())
JUDGE_SERVED = config["judge"].get("base_url") is None


def as_json(value):
    return json.dumps(value, sort_keys=True)


wildcard_constraints:
    cell="[^/]+",
    data_id="[^/]+",
    model="[^/]+",


def cluster_resources(step, model_of=None):
    """Slurm resources of a step from config (`resources`, per base model `base_models[].resources`):
    runtime (minutes) and memory grow with the attempt, so a retried job gets more of both."""

    def lookup(wildcards):
        model = model_of(wildcards) if model_of else None
        return GRID.job_resources(step, model)

    return {
        "runtime": lambda w, attempt: lookup(w)["runtime"] * attempt,
        "mem_mb": lambda w, attempt: lookup(w)["mem_mb"] * attempt,
        "cpus_per_gpu": lambda w: lookup(w).get("cpus_per_gpu"),
        "gpus": lambda w: lookup(w).get("gpus"),
    }


def cell_model(wildcards):
    return GRID.cells[wildcards.cell].base_model
