"""The lines printed when a run ends (Snakefile onsuccess / onerror)."""

import subprocess
import sys
from pathlib import Path

from mlit.run_summary import failed_jobs, summary

from conftest import NO_SLURM_CLUSTER_CONF


def failing_run(tmp_path: Path) -> Path:
    """A real Snakemake run of a two-rule workflow whose job fails; its log file."""
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "results/answers/cell1/EN.jsonl"\n'
        'rule answer:\n    output: "results/answers/{cell}/EN.jsonl"\n    log: "results/logs/generate/{cell}.log"\n'
        '    shell: "echo out of memory > {log}; exit 3"\n')
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path, capture_output=True,
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "SLURM_CONF": str(NO_SLURM_CLUSTER_CONF)})
    return next((tmp_path / ".snakemake" / "log").glob("*.snakemake.log"))


def test_a_failed_run_names_each_failed_job_its_wildcards_and_log(tmp_path):
    log = failing_run(tmp_path)
    assert failed_jobs(log.read_text()) == [{"rule": "answer", "wildcards": "cell=cell1", "jobid": "1",
                                              "log": "results/logs/generate/cell1.log", "failed": True}]
    text = summary(tmp_path / "results", ok=False, log_path=[str(log)])
    assert text.splitlines()[0] == "mlit: the run stopped: a job failed"
    assert "failed: answer (cell=cell1): see results/logs/generate/cell1.log" in text
    assert "tables: not made yet" in text


def test_a_finished_run_says_what_finished_and_where_the_tables_are(tmp_path):
    for cell in ("c1", "c2"):
        (tmp_path / "models" / cell).mkdir(parents=True)
        (tmp_path / "models" / cell / "config.json").write_text("{}")
        (tmp_path / "answers" / cell).mkdir(parents=True)
        (tmp_path / "judgments" / cell).mkdir(parents=True)
        (tmp_path / "judgments" / cell / "EN.jsonl").write_text("{}\n")
        (tmp_path / "judgments" / "open-judge" / cell).mkdir(parents=True)  # a further judge's: not a cell
        (tmp_path / "judgments" / "open-judge" / cell / "EN.jsonl").write_text("{}\n")
    (tmp_path / "models" / "c3.tmp").mkdir()  # a training still running: not finished
    (tmp_path / "tables" / "plots").mkdir(parents=True)
    (tmp_path / "tables" / "main_table.md").write_text("| x |\n")
    text = summary(tmp_path, ok=True)
    assert text.splitlines()[:2] == ["mlit: the run finished",
                                     "  done: 2 fine-tuned models, 2 cells answered, 2 cells judged"]
    (tmp_path / "tables" / "open-judge").mkdir()
    (tmp_path / "tables" / "open-judge" / "agreement_with_main.md").write_text("| x |\n")
    assert summary(tmp_path, ok=True).splitlines()[1] == \
        "  done: 2 fine-tuned models, 2 cells answered, 2 cells judged (and by 1 further judge(s): results/tables/<judge>/)"
    assert f"tables: {tmp_path / 'tables'}/ (main_table.md" in text and "failed" not in text
