"""The checks a Snakemake workflow is expected to pass (also in `make check`): the Python linter, the
Snakemake formatter, and `snakemake --lint` with only the warnings justified below."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BIN = Path(sys.executable).parent

# Each remaining `snakemake --lint` warning, and why it stays:
JUSTIFIED = {
    # the workflow runs in the project's virtual environments (make setup / setup-vllm, envs/*.txt), pinned
    # with the CPU or CUDA build of torch the site needs; a conda env per rule would pull another torch
    "Specify a conda environment or container for each rule.",
    # the interpreters are how a job runs, not what it computes: as params, moving the virtualenv would
    # rerun every job (see mlit.run_settings); it is set once in common.smk (vLLM jobs re-execute themselves
    # in launch.generation.vllm_python, read from the execution settings)
    "Shell command directly uses variable MLIT from outside of the rule",
    # the invocation's execution settings file (results/execution/<hash>.json): named on the command line,
    # not in the params, so that a new file (other execution settings) reruns nothing (see mlit.run_settings)
    "Shell command directly uses variable EXECUTION_FILE from outside of the rule",
}


def test_python_lint_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "src", "tests", "bench"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_snakefmt_is_clean():
    result = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def lint_warnings(snakefile: Path, workdir: Path) -> set[str]:
    """The warning titles of `snakemake --lint` on ``snakefile``; an error unless the lint report covers
    the workflow's rules (a Snakefile that does not parse prints no report at all)."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), "--lint"],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    linted_rules = set(re.findall(r"^Lints for rule (\w+) ", output, flags=re.MULTILINE))
    if "Error" in output or not {"prepare_data", "train", "tables"} <= linted_rules:
        raise AssertionError(f"snakemake --lint did not lint the workflow (rc {result.returncode}):\n{output[-3000:]}")
    return {match.strip().rstrip(":") for match in re.findall(r"^\s+\* (.+)$", output, flags=re.MULTILINE)}


def test_snakemake_lint_has_only_justified_warnings(tmp_path):
    titles = lint_warnings(REPO / "Snakefile", tmp_path)
    justified = {title.rstrip(":") for title in JUSTIFIED}
    assert titles <= justified, sorted(titles - justified)
    assert titles == justified, f"no longer warned (drop from JUSTIFIED): {sorted(justified - titles)}"


def test_the_lint_check_fails_on_a_snakefile_that_does_not_parse(tmp_path):
    copy = tmp_path / "workflow_copy"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv*", ".git", "results", ".snakemake", "tests"))
    with open(copy / "workflow" / "rules" / "tables.smk", "a", encoding="utf-8") as handle:
        handle.write("\nrule broken(:\n")
    with pytest.raises(AssertionError, match="did not lint"):
        lint_warnings(copy / "Snakefile", tmp_path / "work")
