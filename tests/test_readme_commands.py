"""Every command in the README's ``bash`` blocks runs as written on a fresh clone after ``make demo``: Make
targets exist (``make -n``), Snakemake commands plan (their dry-run form; the rule graph and the DAG are
drawn for real and must be DOT alone on stdout, ready for ``| dot``), mlit subcommands and their options
exist, bench scripts exist with the options used; `make report` builds from the shared finished demo grid in
test_workflow.py (one file builds that grid). A
bare ``snakemake`` / ``mlit`` / ``python`` is only allowed after ``. .venv/bin/activate`` in its block."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, snakemake

BIN = Path(sys.executable).parent
ENVIRONMENT_STEPS = ("git", "cd", "$EDITOR", "export", ".", "source")  # set-up lines, not commands to check
VENV_TOOLS = ("snakemake", "mlit", "python")


def readme_commands(text: str) -> list[tuple[int, str, bool]]:
    """(line number, command, venv activated before it in its block) for each command of each bash block;
    continuation lines joined, comments dropped."""
    commands, in_block, activated, pending, start = [], False, False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            in_block, activated = line.strip() == "```bash", False
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        pending += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if line.rstrip().endswith("\\"):
            continue
        words = shlex.split(pending, comments=True)
        pending = ""
        if not words:
            continue
        if words[:2] == [".", ".venv/bin/activate"] or words[:2] == ["source", ".venv/bin/activate"]:
            activated = True
        commands.append((start, " ".join(shlex.quote(w) for w in words), activated))
    return commands


COMMANDS = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))


def first_stage(command: str) -> list[str]:
    """The command's words up to its first pipe, without nohup, redirections and a trailing '&'."""
    words = shlex.split(command)
    if "|" in words:
        words = words[: words.index("|")]
    out, skip = [], False
    for word in words:
        if skip:  # the file after a redirection
            skip = False
        elif word in (">", "2>", ">>", "<"):
            skip = True
        elif word not in ("nohup", "&") and not re.fullmatch(r"\d?>&\d", word):
            out.append(word)
    return out


def tool(words: list[str], activated: bool) -> str | None:
    """'snakemake', 'mlit', 'python', 'make' or None (a set-up line); fails on a bare venv tool without
    an activated venv (\"command not found\" on a fresh clone)."""
    name = words[0]
    if name.startswith(".venv/bin/"):
        return name.removeprefix(".venv/bin/")
    if name in VENV_TOOLS:
        assert activated, f"'{name}' without .venv/bin/ and without '. .venv/bin/activate' before it: " \
                          "command not found on a fresh clone"
        return name
    if name == "make":
        return "make"
    assert name in ENVIRONMENT_STEPS, f"unknown command {name!r}: add it to the README test"
    return None


def test_the_readme_has_the_commands_this_test_checks():
    tools = {tool(first_stage(c), a) for _, c, a in COMMANDS}
    assert {"snakemake", "mlit", "python", "make"} <= tools and len(COMMANDS) > 15


@pytest.mark.parametrize("number,command,activated", [c for c in COMMANDS if first_stage(c[1])[0] == "make"
                                                       or ".venv/bin/python" in c[1] or "mlit" in shlex.split(c[1])[0]
                                                       or "bench/" in c[1]],
                         ids=lambda value: str(value)[:60] if isinstance(value, str) else None)
def test_make_targets_mlit_steps_and_bench_scripts_exist(number, command, activated):
    words = first_stage(command)
    name = tool(words, activated)
    where = f"README.md:{number}: {command}"
    if name == "make":
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, f"{where}\n{result.stderr}"
        return
    args = words[1:]
    if args[:2] == ["-m", "mlit"]:
        args, name = args[2:], "mlit"
    if name == "mlit":
        result = subprocess.run([sys.executable, "-m", "mlit", args[0], "--help"], capture_output=True, text=True)
        assert result.returncode == 0, f"{where}: no mlit step {args[0]!r}\n{result.stderr}"
        for option in (a for a in args if a.startswith("--")):
            assert option in result.stdout, f"{where}: mlit {args[0]} has no option {option}"
        return
    script = REPO / args[0]  # python bench/<script>.py [options]
    assert script.is_file(), f"{where}: {args[0]} does not exist"
    for option in (a for a in args[1:] if a.startswith("-")):
        assert option in script.read_text(encoding="utf-8"), f"{where}: {args[0]} has no option {option}"


def dry_form(words: list[str]) -> tuple[list[str], bool]:
    """The Snakemake arguments to run (the configfile made absolute) and whether the command draws a graph
    (run for real: it runs no job). Other commands get -n; --cores is dropped (a dry run runs nothing)."""
    args, graph = [], any(w in ("--rulegraph", "--dag") for w in words)
    skip = False
    for i, word in enumerate(words[1:], start=1):
        if skip:
            skip = False
            continue
        if word == "--cores":
            skip = True
            continue
        if word == "--report":  # `snakemake plan --report ...`: the plan's own report; its dry-run form
            skip = True
            continue
        args.append(str(REPO / word) if words[i - 1] in ("--configfile", "--profile") else word)
    if not graph and "-n" not in args:
        args.insert(0, "-n")
    return args, graph


def snakemake_commands() -> list[tuple[int, str, bool]]:
    """The README's Snakemake commands, one per distinct dry-run form (nohup's run is the plan's)."""
    seen, out = set(), []
    for c in COMMANDS:
        words = first_stage(c[1])
        if words[0] in ("snakemake", ".venv/bin/snakemake") and tuple(dry_form(words)[0]) not in seen:
            seen.add(tuple(dry_form(words)[0]))
            out.append(c)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("number,command,activated", snakemake_commands(),
                         ids=lambda value: str(value)[:70] if isinstance(value, str) else None)
def test_each_readme_snakemake_command_plans(number, command, activated, tmp_path):
    words = first_stage(command)
    tool(words, activated)
    if "--report" in words and "plan" not in words:
        pytest.skip("the report of a finished run: test_workflow.py::test_report_bundles_tables_and_plots_with_captions")
    args, graph = dry_form(words)
    result = snakemake(tmp_path, *args, check=False, timeout=300)
    assert result.returncode == 0, f"README.md:{number}: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    if graph:  # piped to `dot`: stdout must be the graph and nothing else
        assert result.stdout.startswith("digraph snakemake_dag {") and result.stdout.rstrip().endswith("}"), \
            f"README.md:{number}: stdout is not DOT alone: {result.stdout[:200]!r}"
