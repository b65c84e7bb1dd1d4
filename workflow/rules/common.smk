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
