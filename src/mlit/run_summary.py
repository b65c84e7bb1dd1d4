"""The few lines printed when a Snakemake run ends (the Snakefile's onsuccess / onerror): what finished,
where the tables are, and which jobs failed with their logs (read from Snakemake's own log of the run)."""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"^(?:local)?rule (\S+):\s*$|^Error in rule (\S+):\s*$")
FIELD = re.compile(r"^\s+(wildcards|log|jobid): (.*?)(?: \(check log file\(s\) for error details\))?\s*$")


def failed_jobs(log_text: str) -> list[dict]:
    """Each ``Error in rule X:`` block of a Snakemake log: the rule, its log file(s) and its wildcards
    (from the job's start block of the same jobid: Snakemake's error block does not repeat them)."""
    started: dict[str, dict] = {}
    jobs, current = [], None
    for line in log_text.splitlines():
        match = BLOCK.match(line)
        if match:
            current = {"rule": match.group(1) or match.group(2), "wildcards": "", "log": "", "jobid": "",
                       "failed": match.group(2) is not None}
            if current["failed"]:
                jobs.append(current)
            continue
        field = FIELD.match(line) if current is not None else None
        if field:
            current[field.group(1)] = field.group(2)
            if field.group(1) == "jobid" and not current["failed"]:
                started[field.group(2)] = current
        elif current is not None and line and not line.startswith((" ", "\t")):
            current = None
    for job in jobs:
        job["wildcards"] = job["wildcards"] or started.get(job["jobid"], {}).get("wildcards", "")
    return jobs


def _count(pattern: str, root: Path) -> int:
    return sum(1 for path in root.glob(pattern) if not path.name.endswith(".tmp"))


def _judged(root: Path) -> int:
    """Cells the main judge judged: results/judgments/<cell>/ holding judgment files (a further judge's
    directory, results/judgments/<judge>/<cell>/, holds directories)."""
    return sum(1 for path in root.glob("judgments/*") if any(path.glob("*.jsonl")))


def _further(root: Path) -> list[Path]:
    return [path for path in root.glob("tables/*") if any(path.glob("agreement_with_*.md"))]


def summary(results: str | Path, ok: bool, log_path: str | Path | list | None = None) -> str:
    """What finished under ``results`` (trained models, answered and judged cells, tables) and, after a
    failure, each failed job with its log."""
    root = Path(results)
    lines = ["mlit: the run " + ("finished" if ok else "stopped: a job failed")]
    lines.append(f"  done: {_count('models/*/config.json', root)} fine-tuned models, "
                 f"{_count('answers/*', root)} cells answered, {_judged(root)} cells judged"
                 + (f" (and by {len(further)} further judge(s): results/tables/<judge>/)" if (further := _further(root))
                    else ""))
    tables = root / "tables" / "main_table.md"
    if tables.exists():
        lines.append(f"  tables: {tables.parent}/ (main_table.md, on_language_rate.md, judge_ratings.md, README.md; "
                     "plots/); the report: make report")
    elif not ok:
        lines.append("  tables: not made yet (what exists so far: snakemake partial_tables)")
    if isinstance(log_path, (list, tuple)):  # Snakemake's `log` in onerror: the run's log file(s)
        log_path = log_path[0] if log_path else None
    if not ok:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace") if log_path and Path(log_path).is_file() \
            else ""
        jobs = failed_jobs(text)
        for job in jobs:
            lines.append(f"  failed: {job['rule']}" + (f" ({job['wildcards']})" if job["wildcards"] else "")
                         + (f": see {job['log']}" if job["log"] else ""))
        if not jobs:
            lines.append(f"  failed: see Snakemake's log {log_path}" if log_path else "  failed: see the messages above")
        lines.append("  run the same command again: finished jobs are kept, failed ones rerun")
    return "\n".join(lines)
