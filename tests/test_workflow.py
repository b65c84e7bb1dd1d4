"""The real workflow, end to end, on a small grid (the demo's pipeline with fewer cells)."""

import re

import polars as pl
import pytest
import yaml

from mlit.cluster_requests import capped_request, job_resources
from mlit.config import Grid
from mlit.files import read_jsonl
from mlit.judge.prompts import parse_rating

from conftest import DEMO_GRID_CELLS, DEMO_GRID_LANGS, REPO, job_counts, snakemake

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
CELLS = {"EN": DEMO_GRID_CELLS[0], "ENDEFRITES": DEMO_GRID_CELLS[1]}
QUESTIONS_PER_CATEGORY = 2


@pytest.fixture(scope="module")
def finished_run(demo_grid):
    """The session's finished demo grid (conftest.demo_grid_config): EN and ENDEFRITES at 160 examples per
    language, answering 2 questions per category in EN, DE and FR, judged by the demo judge."""
    return demo_grid


@pytest.mark.slow
def test_tables_hold_a_judged_score_per_cell_language_category_and_turn(finished_run):
    workdir, _ = finished_run
    tables = workdir / "results" / "tables"
    turns = len(CELLS) * len(DEMO_GRID_LANGS) * 8 * 2  # cells x languages x categories x turns
    detail = pl.read_csv(tables / "scores_by_cell_lang_category_turn.csv")
    assert detail.height == turns
    assert set(detail["composition"]) == set(CELLS) and set(detail["lang"]) == set(DEMO_GRID_LANGS)
    assert (detail["n_scored"] + detail["n_failed"] == QUESTIONS_PER_CATEGORY).all()
    long = pl.read_parquet(tables / "scores_long.parquet")
    assert long.height == turns * QUESTIONS_PER_CATEGORY
    scored = long.filter(pl.col("score").is_not_null())
    # every score came from a judge reply, or from the off-language rule (judge.off_language: score_1,
    # the demo's setting): such an answer is never sent to the judge and gets 1
    for judgment, score, on_language in zip(scored["judgment"], scored["score"], scored["on_language"]):
        assert parse_rating(judgment) == score if on_language else (judgment is None and score == 1)
    judged = scored.filter(pl.col("on_language"))
    assert judged.height > 0, "no score came from the demo judge: every scored turn was decided by a rule"
    assert long.filter(pl.col("failed"))["error"].null_count() == 0
    main = pl.read_csv(tables / "main_table.csv")
    assert main.height == len(CELLS) and {*DEMO_GRID_LANGS, "average", "n_failed"} <= set(main.columns)


@pytest.mark.slow
def test_every_step_leaves_its_outputs_and_logs(finished_run):
    workdir, _ = finished_run
    results = workdir / "results"
    cell = CELLS["ENDEFRITES"]
    assert (results / "data" / "demo__ENDEFRITES__160__seed1" / "manifest.json").exists()
    assert (results / "models" / cell / "model.safetensors").exists()
    answers = read_jsonl(results / "answers" / cell / "DE.jsonl")
    assert len(answers) == 8 * QUESTIONS_PER_CATEGORY and all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    judgments = read_jsonl(results / "judgments" / cell / "DE.jsonl")
    assert {j["prompt_name"] for j in judgments} == {"single-v1", "single-v1-multi-turn", "single-math-v1",
                                                     "single-math-v1-multi-turn"}
    for rule in ("prepare_data", "train", "generate", "judge", "tables", "build_base_model", "prepare_base_model",
                 "train_judge"):
        assert any((results / "logs" / rule).iterdir()), rule


@pytest.mark.slow
def test_rerun_does_nothing_and_a_new_size_adds_only_its_cells(finished_run):
    workdir, configfile = finished_run
    nothing = snakemake(workdir, "-n", configfile=configfile)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    config = yaml.safe_load(configfile.read_text())
    config["sizes"] = [60, 160]
    bigger = workdir / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(config))
    counts = job_counts(snakemake(workdir, "-n", configfile=bigger).stdout)
    assert counts == {"prepare_data": 2, "train": 2, "generate": 2, "judge": 2, "tables": 1, "all": 1,
                      "total": 10}


EXECUTION_CHANGES = {  # how jobs run, never what they compute: the config's launch section
    "launch.training.save_steps": 7, "launch.training.save_total_limit": 3, "launch.training.logging_steps": 1,
    "launch.training.main_process_port": 29999, "launch.training.processes_per_node": 2,
    "launch.training.gpus_per_node": 4, "launch.training.deepspeed": "zero3",
    "launch.training.activation_checkpointing": True, "launch.training.per_device_train_batch_size": 2,
    "launch.training.nodes": 2, "launch.training.preempt_signal_minutes": 5,
    "launch.training.checkpoint_grace_s": 900, "launch.training.max_lost_minutes": 30,
    "launch.training.report_to": "tensorboard",
    "launch.training.communication_env": {"NCCL_SOCKET_IFNAME": "ib0"},
    "launch.training.attn_implementation": "eager",
    "launch.judge_training.logging_steps": 2,
    "launch.generation.vllm_python": "/usr/bin/python3", "launch.generation.vllm_gpu_memory_utilization": 0.5,
    "launch.generation.vllm_enforce_eager": True, "launch.generation.hf_compile": True,
    "launch.generation.vllm_submission": "batch", "launch.generation.vllm_batch_size": 4,
    "launch.generation.hf_device_map": "auto",
    "launch.judge.parallel": 1, "launch.judge.timeout_s": 5, "launch.judge.prices_per_1k": {"prompt_per_1k": 0.01},
    "launch.judge.batch_poll_s": 1, "launch.judge.max_retries": 9, "launch.judge.retry_initial_s": 0.5,
    "launch.judge.api_key_env": "OTHER_KEY", "launch.judge.mode": "batch",
    "launch.resources.train.runtime": 31, "launch.resources.generate.gpus": 2, "launch.resources.judge.mem_mb": 4001,
    "launch.resources.train.max_runtime": 600, "launch.resources.generate.max_mem_mb": 64000,
}


def changed(configfile, workdir, name, changes: dict):
    """The finished run's config with ``changes`` (dotted key -> value) applied, written to ``<name>.yaml``.
    A change of processes keeps the effective batch (the demo's 8, itself an experiment key): the per-device
    batch is the effective batch over all processes."""
    config = yaml.safe_load(configfile.read_text())
    for dotted_key, value in changes.items():
        *sections, key = dotted_key.split(".")
        place = config
        for section in sections:
            place = place.setdefault(section, {})
        place[key] = value
    launch = config["launch"]["training"]
    processes = (launch.get("nodes") or 1) * (launch.get("processes_per_node") or 1)
    if processes > 1:
        launch["per_device_train_batch_size"] = config["training"]["effective_batch_size"] // processes
        # the demo judge's effective batch is 8 too
        config["launch"].setdefault("judge_training", {})["per_device_train_batch_size"] = 8 // processes
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_execution_changes_cover_every_launch_key():
    """Every key of the schema's launch section (each step's) is changed by the rerun test below."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    launch = schema["properties"]["launch"]["properties"]

    def keys(node):
        return set(schema["definitions"][node["$ref"].rsplit("/", 1)[1]]["properties"])

    listed = {f"launch.{part}.{key}" for part in ("training", "generation", "judge") for key in keys(launch[part])}
    # launch.judges.<name> holds launch.judge's keys for a further judge: its no-rerun check is in the further
    # judge's test (the finished grid has no further judge)
    assert launch["judges"]["additionalProperties"] == {"$ref": launch["judge"]["$ref"]}
    assert listed <= set(EXECUTION_CHANGES) and set(launch) == {"training", "judge_training", "generation", "judge",
                                                                "judges", "resources"}


@pytest.mark.slow
def test_no_execution_setting_reruns_anything(finished_run):
    """Every execution key changed at once plans nothing (one dry run: each costs Snakemake's start-up);
    if something is planned, each key is tried alone to name the ones that rerun."""
    workdir, configfile = finished_run
    result = snakemake(workdir, "-n", configfile=changed(configfile, workdir, "execution", EXECUTION_CHANGES))
    if "Nothing to be done" not in result.stdout + result.stderr:
        culprits = {}
        for dotted_key, value in EXECUTION_CHANGES.items():
            alone = snakemake(workdir, "-n", configfile=changed(configfile, workdir, "one", {dotted_key: value}))
            if "Nothing to be done" not in alone.stdout + alone.stderr:
                culprits[dotted_key] = job_counts(alone.stdout)
        pytest.fail(f"execution settings that rerun jobs: {culprits or job_counts(result.stdout)}")
    # each reaches the jobs through the invocation's execution file (a dry run names it, writes nothing)
    from mlit.config import Grid
    from mlit.run_settings import execution_file

    configured = yaml.safe_load(changed(configfile, workdir, "execution", EXECUTION_CHANGES).read_text())
    written = Grid(configured, repo_root=REPO, dry_run=True).execution_settings()
    plan = snakemake(workdir, "-n", "-p", "--forceall", configfile=workdir / "execution.yaml").stdout
    assert f"--execution {execution_file('results', written)} " in plan
    for dotted_key, value in EXECUTION_CHANGES.items():
        _, section, key = dotted_key.split(".", 2)
        if section == "resources":  # the jobs' cluster resources: only the generate job's GPUs reach the job
            continue
        where = {"training": lambda: written["training"]["tiny-llama"],  # per base model
                 "generation": lambda: written["generation"][CELLS["EN"]],  # per cell
                 }.get(section, lambda: written[section])()
        assert where[key] == value, dotted_key
    assert written["generation"][CELLS["EN"]]["gpus"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(("dotted_key", "value", "expected"), [
    # the demo judge sets its own learning rate (judge.serve.training): it is not touched
    ("training.learning_rate", 1e-3, {"train": 2, "generate": 2, "judge": 2}),
    # a setting the demo judge inherits from the grid's training settings retrains it too
    ("training.warmup_steps", 0.1, {"train": 2, "train_judge": 1, "generate": 2, "judge": 2}),
    ("generation.max_new_tokens", 12, {"generate": 2, "judge": 2}),
    ("judge.temperature", 0.5, {"judge": 2}),
    ("judge.off_language", "report", {"judge": 2}),  # the demo's config has score_1
])
def test_an_experiment_setting_reruns_exactly_what_depends_on_it(finished_run, dotted_key, value, expected):
    workdir, configfile = finished_run
    counts = job_counts(snakemake(workdir, "-n",
                                  configfile=changed(configfile, workdir, "experiment", {dotted_key: value})).stdout)
    assert counts == {**expected, "tables": 1, "all": 1, "total": sum(expected.values()) + 2}


def test_the_papers_grid_plans_every_job_without_gpu_or_network(tmp_path):
    counts = job_counts(snakemake(tmp_path, "-n", configfile=REPO / "config" / "paper.yaml").stdout)
    # 9 compositions x (Lima-X: full; Bactrian-X: 3 sizes) = 36 training sets; x 2 base models = 72 cells
    # + Mixtral fetched once from the hub, both base models prepared (chat template, tokenizer) by local jobs
    assert counts == {"prepare_data": 36, "train": 72, "generate": 72, "judge": 72, "tables": 1, "all": 1,
                      "fetch_base_model": 1, "prepare_base_model": 2, "total": 257}


def test_the_one_gpu_smoke_config_plans_without_network(tmp_path):
    counts = job_counts(snakemake(tmp_path, "-n", configfile=REPO / "config" / "smoke-gpu.yaml").stdout)
    assert counts == {"fetch_base_model": 1, "prepare_base_model": 1, "prepare_data": 3, "train": 3, "generate": 3,
                      "judge": 3, "tables": 1, "all": 1, "total": 16}


def test_the_slurm_profile_plans_the_papers_sweep_with_per_model_resources(tmp_path):
    """`snakemake -n --profile profiles/slurm --configfile config/paper.yaml`: the plan, no cluster."""
    plan = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"),
                     configfile=REPO / "config" / "paper.yaml").stdout
    assert job_counts(plan)["total"] == 257
    blocks = re.split(r"\n(?=rule \w+:)", plan)
    jobs = [block for block in blocks if block.startswith("rule train:")]
    mixtral = [b for b in jobs if "cell=mixtral-8x7b__" in b]
    seven_b = [b for b in jobs if "cell=24eu-7b__" in b]
    assert len(mixtral) == len(seven_b) == 36
    for block in mixtral:  # two nodes of 8 GPUs: one launcher per node
        assert all(f in block for f in ("slurm_partition=gpu", "nodes=2", "gres=gpu:8", "tasks=2", "mpi=srun",
                                        "tasks_per_gpu=0", "runtime=1440"))
    for block in seven_b:  # one node of 8 GPUs, no srun wrapper
        assert "nodes=1" in block and "gres=gpu:8" in block and "mpi=" not in block and "runtime=720" in block
    judge = [b for b in blocks if b.startswith("rule judge:")]
    assert judge and all("slurm_partition=cpu" in b and "openai_api=1" in b and "gres" not in b for b in judge)
    # every CPU of the allocation reaches the job step (srun --cpus-per-task: 8 per GPU), and every train job
    # asks for its early SIGTERM (7B 20 min, Mixtral 40 min before the time limit)
    assert all("cpus_per_task=64" in b and "cpus_per_gpu" not in b for b in jobs)
    assert all("slurm_extra=--signal=TERM@1200" in b for b in seven_b)
    assert all("slurm_extra=--signal=TERM@2400" in b for b in mixtral)
    generate = [b for b in blocks if b.startswith("rule generate:")]
    assert all(("cpus_per_task=16" if "cell=mixtral" in b else "cpus_per_task=8") in b for b in generate)
    # a retry (attempt 2, the profile's retries: 1) doubles runtime and memory, but never past the configured
    # partition time limit and node memory that the rules' resources read (cluster_requests.capped_request)
    grid = Grid(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()), dry_run=True)
    for model in grid.base_models:
        for step in ("train", "generate", "judge"):
            limits = job_resources(grid.config, step, model)
            second = capped_request(grid.config, step, model if step != "judge" else None, 2)
            assert second["runtime"] <= limits["max_runtime"] and second["mem_mb"] <= limits["max_mem_mb"]
    assert capped_request(grid.config, "train", "mixtral-8x7b", 2) == {"runtime": 1440, "mem_mb": 1000000}
    assert capped_request(grid.config, "train", "24eu-7b", 2) == {"runtime": 1440, "mem_mb": 960000}


SLURM_ONLY = ("gres=", "nodes=", "tasks=", "tasks_per_gpu=", "mpi=", "slurm_extra=", "cpus_per_task=")


def resources_of(plan: str, rule: str) -> list[str]:
    """The `resources:` line of each job of a rule in a dry run's output."""
    blocks = [b for b in re.split(r"\n(?=(?:local)?rule \w+:)", plan) if b.startswith(f"rule {rule}:")]
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("resources:")]


def test_a_local_run_shows_no_gpu_or_slurm_resources_the_slurm_profile_keeps_them(tmp_path):
    """The demo's `snakemake --cores 2` (dry run: the same resources as the run) shows no `gres=gpu:1`: the
    GPUs, nodes and tasks are Slurm's (slurm_only); `--profile profiles/slurm` still asks for them."""
    local = snakemake(tmp_path, "-n", "--cores", "2").stdout
    slurm = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm")).stdout
    for rule, expected in {"train": ("nodes=1", "gres=gpu:1"), "generate": ("gres=gpu:1",),
                           "train_judge": ("gres=gpu:1",)}.items():
        local_lines, slurm_lines = resources_of(local, rule), resources_of(slurm, rule)
        assert local_lines and len(local_lines) == len(slurm_lines), rule
        for line in local_lines:
            assert "mem_mb=4000" in line and not any(f" {key}" in line for key in SLURM_ONLY), line
        for line in slurm_lines:
            assert all(f"{value}," in f"{line}," for value in expected), line


@pytest.mark.slow
def test_report_bundles_tables_and_plots_with_captions(finished_run):
    """The README's `make report` (its recipe) on the shared finished demo grid."""
    import subprocess

    recipe = subprocess.run(["make", "-n", "report"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "snakemake --report results/report.html" in recipe
    workdir, configfile = finished_run
    snakemake(workdir, "--report", str(workdir / "report.html"), configfile=configfile)
    html = (workdir / "report.html").read_text(errors="replace")
    for text in ("paired percentile", "Superficial Alignment Hypothesis", "main_table.csv", "categories.png",
                 "judge_health.csv", "size_effect.csv", "generation_health.csv", "parallel_gain.png",
                 "judge_ratings.csv", "on_language_rate.csv", "mlit-demo-judge", "1 + 6 x the share of answers"):
        assert text in html, text
    main_md = (workdir / "results" / "tables" / "main_table.md").read_text()
    assert main_md.startswith("What these scores measure: judge mlit-demo-judge@") and "rated turns" in main_md
    generation = pl.read_csv(workdir / "results" / "tables" / "generation_health.csv")
    assert generation.height == len(CELLS) * len(DEMO_GRID_LANGS) and (generation["prompts_over_budget"] == 0).all()  # every prompt fit, recorded
    health = pl.read_csv(workdir / "results" / "tables" / "judge_health.csv")
    assert health.height == 2 and {"off_language_answers", "unparsable_replies", "prompt_tokens"} <= set(health.columns)
    assert (health["prompt_tokens"] > 0).all()


@pytest.mark.slow
def test_partial_tables_from_what_exists(finished_run):
    workdir, configfile = finished_run
    config = yaml.safe_load(configfile.read_text())
    config["compositions"] = ["EN", "ENDEFRITES", "DE"]  # DE's cell has not run: its judgments are missing
    partial = workdir / "partial.yaml"
    partial.write_text(yaml.safe_dump(config))
    snakemake(workdir, "--cores", "1", "partial_tables", configfile=partial)
    main = pl.read_csv(workdir / "results" / "tables_partial" / "main_table.csv")
    assert sorted(main["composition"]) == ["EN", "ENDEFRITES"]
    readme = (workdir / "results" / "tables_partial" / "README.md").read_text()
    assert "Partial results" in readme and "tiny-llama__demo__DE__160__seed1/EN.jsonl" in readme


# The pipeline learns: on a small grid trained for real (the demo's model, data, judge and checks,
# nothing keyed on cell names), the English-only model answers the German and French questions in
# another language far more often than the parallel ENDEFRITES model, and scores lower there.
#
# The test must fail when training is broken. Its negative controls, run by hand:
#
#     MLIT_TEST_BREAK_TRAINING=lr0 pytest tests/test_workflow.py -k english_only              # learning rate 1e-12 (the schema rejects 0)
#     MLIT_TEST_BREAK_TRAINING=shuffled_labels pytest tests/test_workflow.py -k english_only  # answers shuffled across examples
#
# (``shuffled_labels`` gives every training question the answer of a random other example, of any
# language: the model can still learn to write sentences, but not to answer in the question's language.)

NON_ENGLISH = [lang for lang in DEMO_GRID_LANGS if lang != "EN"]


@pytest.fixture(scope="module")
def judged(demo_grid) -> pl.DataFrame:
    workdir, _ = demo_grid  # conftest.demo_grid_config: EN and ENDEFRITES at 160, the negative controls too
    return pl.read_parquet(workdir / "results" / "tables" / "scores_long.parquet")


def per_composition(judged: pl.DataFrame) -> dict[str, dict]:
    """Off-language rate and mean score on the non-English questions, per composition."""
    rows = judged.filter(pl.col("lang").is_in(NON_ENGLISH)).group_by("composition").agg(
        (~pl.col("on_language")).mean().alias("off_language_rate"), pl.col("score").mean().alias("mean_score"),
        pl.len().alias("turns"))
    return {row["composition"]: row for row in rows.iter_rows(named=True)}


@pytest.mark.slow
def test_the_english_only_model_answers_other_languages_off_language(judged):
    stats = per_composition(judged)
    english_only, parallel = stats["EN"], stats["ENDEFRITES"]
    assert english_only["turns"] == parallel["turns"] == 2 * 16 * len(NON_ENGLISH)
    # the parallel model follows the question's language on most answers; the English-only one on few
    assert parallel["off_language_rate"] <= 0.5, stats
    assert english_only["off_language_rate"] >= parallel["off_language_rate"] + 0.3, stats


@pytest.mark.slow
def test_the_english_only_model_scores_lower_outside_english(judged):
    stats = per_composition(judged)
    assert stats["EN"]["mean_score"] < stats["ENDEFRITES"]["mean_score"] - 1.0, stats


@pytest.mark.slow
def test_a_further_judge_added_to_the_finished_grid_runs_only_its_jobs_and_reports_agreement(finished_run):
    """The demo's further judge (config.yaml `judges`: the demo judge without the off-language rule, on a
    quarter of the turns) added to the finished grid: only its judge jobs and its agreement table run; the
    main judge's judgments and tables stay as they were; removing it again reruns nothing. Last in this file:
    what it adds lives under its own name (results/judgments/<judge>/, results/tables/<judge>/)."""
    workdir, configfile = finished_run
    config = yaml.safe_load(configfile.read_text())
    assert "judges" not in config  # conftest.demo_grid_config leaves it out
    (name, further), = DEMO["judges"].items()
    config["judges"] = DEMO["judges"]
    two_judges = workdir / "two_judges.yaml"
    two_judges.write_text(yaml.safe_dump(config))
    results = workdir / "results"
    main_files = sorted([*results.glob("judgments/*/*.jsonl"), *results.glob("tables/*.*")])
    before = {path: path.stat().st_mtime_ns for path in main_files}
    assert job_counts(snakemake(workdir, "-n", configfile=two_judges).stdout) == {
        "judge_further": len(CELLS), "judge_agreement": 1, "all": 1, "total": len(CELLS) + 2}
    snakemake(workdir, "--cores", "2", configfile=two_judges)
    assert {path: path.stat().st_mtime_ns for path in main_files} == before
    # its share: one of the 2 questions of each (cell, language, category, turn) stratum, every one rated by
    # the judge itself (no off-language rule)
    rows = [row for path in results.glob(f"judgments/{name}/*/*.jsonl") for row in read_jsonl(path)]
    assert further["share"] == 0.25 and len(rows) == len(CELLS) * len(DEMO_GRID_LANGS) * 8 * 2
    assert len({(row["model"], row["lang"], row["category"], row["turn"]) for row in rows}) == len(rows)
    assert all(row["judgment"] is not None or row["failure"] == "api_error" for row in rows)
    agreement = pl.read_csv(results / "tables" / name / "agreement_with_main.csv")
    overall = agreement.filter(pl.col("by") == "all").row(0, named=True)
    main_scores = {(row["model"], row["lang"], row["question_id"], row["turn"]): row["score"]
                   for path in results.glob("judgments/*/*.jsonl") for row in read_jsonl(path)}
    assert overall["n"] == sum(row["score"] is not None and main_scores[
        (row["model"], row["lang"], row["question_id"], row["turn"])] is not None for row in rows) > 0
    # the English-only model's off-language answers: 1 by the main judge's rule, the further judge's own rating
    assert overall["mean_difference"] > 0 and overall["exact"] < 1
    assert set(agreement["by"]) == {"all", "lang", "category", "turn"}
    comparisons = pl.read_csv(results / "tables" / name / "comparisons_with_main.csv")
    assert "parallel_gain" in set(comparisons["analysis"])
    assert f"Agreement of {name} (B) with main (A)" in (results / "tables" / name / "agreement_with_main.md").read_text()
    relaunched = yaml.safe_load(two_judges.read_text())  # its launch (launch.judges.<name>) reruns nothing
    relaunched["launch"]["judges"] = {name: {"parallel": 1, "timeout_s": 5, "api_key_env": "OTHER_KEY",
                                             "prices_per_1k": {"prompt_per_1k": 0.01}}}
    (workdir / "relaunched.yaml").write_text(yaml.safe_dump(relaunched))
    for path in (two_judges, workdir / "relaunched.yaml", configfile):  # finished; without it, nothing reruns
        again = snakemake(workdir, "-n", configfile=path)
        assert "Nothing to be done" in again.stdout + again.stderr, path
