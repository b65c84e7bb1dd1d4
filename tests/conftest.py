from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Snakemake's Slurm executor plugin runs `scontrol show config` whenever Snakemake starts (it asks for
# MinJobAge). Where Slurm's client is installed but no controller answers (CI installs slurm-wlm for
# test_slurm.py), scontrol retries for about 9 s, up to the plugin's 10 s timeout: on every Snakemake
# process of every test. Outside test_slurm.py's cluster (which points SLURM_CONF at its own config),
# the tests have no cluster, and an empty config makes scontrol fail at once.
NO_SLURM_CLUSTER_CONF = REPO / "tests" / "slurm" / "no_cluster.conf"
os.environ["SLURM_CONF"] = str(NO_SLURM_CLUSTER_CONF)
LANGS = ["EN", "DE", "FR", "IT", "ES"]
DEMO_DATA = str(REPO / "data" / "demo" / "instructions_{lang}.jsonl")
BENCH = REPO / "data" / "mt_bench_x"


# Snakemake processes the tests started, and their seconds: each pays Python's and Snakemake's start-up
# (about 2 s here), the floor under the suite's time. Printed at the end of the run.
SNAKEMAKE_RUNS = {"executing": [0, 0.0], "dry": [0, 0.0]}


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand its counts to the controller
        session.config.workeroutput["snakemake_runs"] = SNAKEMAKE_RUNS


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for kind, (count, seconds) in getattr(node, "workeroutput", {}).get("snakemake_runs", {}).items():
        SNAKEMAKE_RUNS[kind] = [SNAKEMAKE_RUNS[kind][0] + count, SNAKEMAKE_RUNS[kind][1] + seconds]


def pytest_terminal_summary(terminalreporter):
    parts = [f"{count} {kind} ({seconds:.0f} s)" for kind, (count, seconds) in SNAKEMAKE_RUNS.items() if count]
    if parts:
        terminalreporter.write_line(f"Snakemake runs started by the tests: {', '.join(parts)}")


# `make test` runs on two pytest-xdist workers (`-n 2 --dist loadfile --no-loadscope-reorder`: xdist would
# otherwise order files by their number of tests, not by this order): each test file goes to one worker,
# so what a file's tests share (a session or module fixture that trains, the machine's one Slurm cluster) is
# built once. Every test that reads the shared demo grid is in test_workflow.py for that reason. The files
# whose shared builds take longest go first (longest first: no worker is left alone with a long file at the
# end); each file's tests stay together and in their order.
LONGEST_FIRST = ["test_workflow", "test_gpu_check_rehearsal", "test_slurm", "test_distributed_training",
                 "test_generate_backends", "test_standin_workflow"]


def pytest_collection_modifyitems(config, items):
    elsewhere = sorted({item.nodeid.split("::")[0] for item in items if "demo_grid" in item.fixturenames
                        and item.module.__name__ != "test_workflow"})
    if elsewhere:  # another file would build the demo grid again on the other worker (minutes)
        raise pytest.UsageError(f"{', '.join(elsewhere)} use(s) the demo_grid fixture: move those tests into "
                                "tests/test_workflow.py, the one file that builds it")
    order = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.module.__name__, len(order)))


def snakemake_command(workdir: Path, *args: str, configfile: Path | None = None) -> tuple[list[str], dict]:
    """The command line and environment that run the real workflow (this repository's Snakefile) in ``workdir``."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    return command, {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the real workflow (the Snakefile of this repository) in ``workdir``."""
    command, env = snakemake_command(workdir, *args, configfile=configfile)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    kind = "dry" if "-n" in args or "--lint" in args else "executing"
    SNAKEMAKE_RUNS[kind] = [SNAKEMAKE_RUNS[kind][0] + 1, SNAKEMAKE_RUNS[kind][1] + time.monotonic() - started]
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run, as {rule: count}."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or set(line.strip()) <= {"-", " "}:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                break
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """The demo's tiny base model, built by the project's own builder."""
    from mlit.model.tiny import build_base_model

    out = tmp_path_factory.mktemp("base") / "tiny"
    corpus = [DEMO_DATA.format(lang=lang) for lang in LANGS] + [str(BENCH / lang / "question.jsonl") for lang in LANGS] \
        + [str(BENCH / lang / "judge_prompts.jsonl") for lang in LANGS]
    build_base_model({"vocab_size": 1500, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
                      "max_position_embeddings": 1024}, corpus, out)
    return out


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> dict[str, Path]:
    """Stand-ins for the study's hub checkpoints (tests/standins.py): Mixtral-shaped with Mistral's
    tokenizer, and one with code and a slow tokenizer in the checkpoint."""
    from mlit.files import read_jsonl
    from standins import build_mixtral_standin, build_remote_code_standin

    texts = []
    for lang in LANGS:
        texts += [t for row in read_jsonl(DEMO_DATA.format(lang=lang)) for t in (row["instruction"], row["output"])]
        texts += [t for row in read_jsonl(BENCH / lang / "question.jsonl") for t in row["turns"]]
    root = tmp_path_factory.mktemp("standins")
    return {"mixtral": build_mixtral_standin(root / "mixtral-8x7b-like"),
            "remote": build_remote_code_standin(root / "polyglot-7b-like", texts)}


# The demo grid every test that only reads a finished run shares (all in test_workflow.py):
# the demo's model, data, judge and checks on two compositions, trained once per pytest session.
def demo_config() -> dict:
    """config/config.yaml less its further judge (`judges`), as a fresh dict: what every test that runs the
    demo's pipeline runs (the main judge only); the further judge has its own test, on the shared grid
    (test_workflow.py)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.pop("judges")
    return config


DEMO = demo_config()
DEMO_GRID_CELLS = ["tiny-llama__demo__EN__160__seed1", "tiny-llama__demo__ENDEFRITES__160__seed1"]
DEMO_GRID_LANGS = ["EN", "DE", "FR"]
# Negative controls of the learning-signal test, run by hand (see the learning-signal tests in tests/test_workflow.py):
# None, "lr0" or "shuffled_labels"
BREAK = os.environ.get("MLIT_TEST_BREAK_TRAINING")


def shuffled_label_data(out_dir: Path) -> str:
    """The demo data with every answer moved to a random other example (across all languages)."""
    rows = {lang: [json.loads(line) for line in open(DEMO_DATA.format(lang=lang), encoding="utf-8")] for lang in LANGS}
    outputs = [row["output"] for lang in LANGS for row in rows[lang]]
    random.Random(0).shuffle(outputs)
    for lang in LANGS:
        with open(out_dir / f"instructions_{lang}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows[lang]:
                handle.write(json.dumps({**row, "output": outputs.pop()}, ensure_ascii=False) + "\n")
    return str(out_dir / "instructions_{lang}.jsonl")


def demo_grid_config(workdir: Path) -> dict:
    """The demo config on the English-only and the parallel composition at 160 examples per language,
    answering 2 questions per category in English, German and French (the demo judge included, its further
    judge not)."""
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN", "ENDEFRITES"], sizes=[160], eval_languages=DEMO_GRID_LANGS)
    config["generation"].update(questions_per_category=2)
    config["judge"]["off_language"] = "score_1"
    if BREAK == "lr0":
        config["training"]["learning_rate"] = 1e-12  # the schema rejects 0 (exclusiveMinimum): as good as 0
    elif BREAK == "shuffled_labels":
        config["datasets"]["demo"]["local"] = shuffled_label_data(workdir)
    elif BREAK is not None:
        raise ValueError(f"MLIT_TEST_BREAK_TRAINING={BREAK!r}: expected lr0 or shuffled_labels")
    return config


@pytest.fixture(scope="session")
def demo_grid(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run of ``demo_grid_config``: (workdir, configfile). Tests only read it, or dry-run other
    configs against it; what they add goes under their own names."""
    workdir = tmp_path_factory.mktemp("demo_grid")
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(demo_grid_config(workdir)))
    snakemake(workdir, "--cores", "2", configfile=configfile)
    return workdir, configfile
