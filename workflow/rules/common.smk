# Config validation and the grid. Everything below is expanded from `config` (the only source).
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from mlit.config import ConfigError, Grid  # noqa: E402

validate(config, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
# A dry run plans a grid whose local checkpoints are not here yet (a missing base_models[].path is then a
# warning, an error otherwise). The executor is not known while the Snakefile is parsed: read the flag.
DRY_RUN = any(arg in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in sys.argv)
try:
    GRID = Grid(config, repo_root=REPO, dry_run=DRY_RUN)
except ConfigError as error:
    raise WorkflowError(f"config error: {error}") from None
for warning in GRID.warnings:
    print(f"config warning: {warning}", file=sys.stderr)

RESULTS = "results"
MLIT = f"{shlex.quote(sys.executable)} -m mlit"
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
