"""The judge and tables steps of the real workflow against a real local OpenAI-protocol server: a rerun
always finishes the work (a failed judge job, a file deleted by hand, requests that failed after their
retries), and the tables always show the judgments of the config."""

import copy
import os

import polars as pl
import pytest
import yaml

from mlit.files import read_jsonl
from support.scripted_server import OpenAIServer

from conftest import demo_config, job_counts, snakemake

pytestmark = pytest.mark.slow

DEMO = demo_config()
CELL = "tiny__demo__EN__8__seed1"
KEY = "PLANTED-workflow-key-0123456789"  # not sk-shaped: found as the value of $launch.judge.api_key_env


def grid_config(base_model, base_url: str, judge_model: str) -> dict:
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN"], sizes=[8], eval_languages=["EN"])
    config["base_models"] = [{"name": "tiny", "path": str(base_model), "chat_template": "opengptx"}]
    config["training"].update(num_train_epochs=1)
    config["launch"]["training"].update(logging_steps=1, save_steps=1000)
    config["generation"].update(questions_per_category=1, max_new_tokens=4)
    config["judge"] = {"model": judge_model, "base_url": base_url}
    config["launch"]["judge"] = {"max_retries": 0, "retry_initial_s": 0, "parallel": 4,
                                 "api_key_env": "MLIT_WORKFLOW_KEY"}
    return config


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_base_model):
    """A finished one-cell grid judged by 'judge-a' (every reply rates 7); the server's replies follow
    ``state``: {"status": HTTP status for every request or None, "rating": n, "failing": prompt texts}."""
    workdir = tmp_path_factory.mktemp("judge_workflow")
    state = {"status": None, "rating": 7, "failing": set()}

    def behaviour(request, attempt):
        prompt = request["messages"][-1]["content"]
        if state["status"] or any(text in prompt for text in state["failing"]):  # the error echoes the key
            return ("status", state["status"] or 500, {}, f"key {KEY} refused")
        return ("reply", f"Fine. Rating: [[{state['rating']}]]")

    with OpenAIServer(behaviour) as server:
        def run(judge_model: str, *args, check=True):
            configfile = workdir / f"{judge_model}.yaml"
            configfile.write_text(yaml.safe_dump(grid_config(tiny_base_model, server.base_url, judge_model)))
            return snakemake(workdir, "--cores", "2", *args, configfile=configfile, check=check)

        os.environ["MLIT_WORKFLOW_KEY"] = KEY
        try:
            run("judge-a")
            yield workdir, server, state, run
        finally:
            os.environ.pop("MLIT_WORKFLOW_KEY")


def main_table(workdir):
    return pl.read_csv(workdir / "results" / "tables" / "main_table.csv").row(0, named=True)


def test_a_failed_judge_job_and_deleted_files_are_made_again_and_the_tables_follow(grid):
    workdir, server, state, run = grid
    judgments = workdir / "results" / "judgments" / CELL / "EN.jsonl"
    assert main_table(workdir)["EN"] == 7.0
    state["status"] = 401  # a new judge (a params change) whose key is refused: the job fails
    failed = run("judge-b", check=False)
    assert failed.returncode != 0 and not judgments.exists()  # Snakemake deleted the failed job's output
    state.update(status=None, rating=3)  # the key is fixed: the same command finishes the work
    fixed = run("judge-b")
    assert "Nothing to be done" not in fixed.stdout + fixed.stderr
    assert {row["judge"][0] for row in read_jsonl(judgments)} == {"judge-b"}
    assert main_table(workdir)["EN"] == 3.0  # not the previous judge's 7

    judgments.unlink()  # by hand: made again (from the judge cache: nothing is sent) and summarised again
    sent = len(server.requests)
    run("judge-b")
    assert judgments.exists() and len(server.requests) == sent and main_table(workdir)["EN"] == 3.0
    tables = workdir / "results" / "tables" / "main_table.csv"
    assert tables.stat().st_mtime >= judgments.stat().st_mtime

    answers = workdir / "results" / "answers" / CELL / "EN.jsonl"
    kept = answers.read_bytes()
    answers.unlink()  # an answers file deleted by hand: answered, judged and summarised again
    plan = job_counts(run("judge-b", "-n").stdout)
    assert plan == {"generate": 1, "judge": 1, "tables": 1, "all": 1, "total": 4}
    answers.write_bytes(kept)


def test_a_rerun_retries_the_requests_that_failed_and_only_them(grid):
    workdir, server, state, run = grid
    judgments = workdir / "results" / "judgments" / CELL / "EN.jsonl"
    answer = read_jsonl(workdir / "results" / "answers" / CELL / "EN.jsonl")[0]
    state.update(status=None, rating=5, failing={answer["choices"][0]["turns"][0]})  # its turns 1 and 2 fail
    run("judge-c")
    rows = read_jsonl(judgments)
    assert sorted(row["turn"] for row in rows if row["failure"] == "api_error") == [1, 2]
    assert main_table(workdir)["n_failed"] == 2

    state["failing"] = set()
    sent = len(server.requests)
    rerun = run("judge-c")
    assert "judge: 2 judge request(s) of 1 cell(s) failed after their retries (api_error)" in rerun.stderr
    assert len(server.requests) - sent == 2  # only the failed ones: every reply received is in the cache
    assert "retrying: the last judge run of this cell recorded 2 request(s)" in \
        (workdir / "results" / "logs" / "judge" / f"{CELL}.log").read_text()
    assert all(row["score"] == 5.0 for row in read_jsonl(judgments))
    assert main_table(workdir)["n_failed"] == 0 and main_table(workdir)["EN"] == 5.0

    after = run("judge-c", "-n")
    assert "Nothing to be done" in after.stdout + after.stderr and "judge:" not in after.stderr


def test_the_key_reaches_no_file_of_the_grid(grid):
    """After the runs above (a refused key, failed requests whose errors echo the key): the key is in no
    file the workflow wrote: results (judgments, tables, logs, execution settings), Snakemake's
    metadata and logs."""
    workdir, server, state, run = grid
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"  # it was sent
    files = [path for path in workdir.rglob("*") if path.is_file()]
    assert any(".snakemake/metadata" in str(path) for path in files) and any("logs/judge" in str(path) for path in files)
    assert [path for path in files if KEY.encode() in path.read_bytes()] == []
