"""How the launch section reaches the jobs without being part of their params.

A rule's params are the experiment sections of the config verbatim (``training``, ``generation``,
``judge``: what defines its result): changing one reruns that step and what depends on it. The
``launch`` section (nodes, processes, GPUs, DeepSpeed, batch split, checkpoint and log cadence, grace,
timeouts, concurrency, prices, interpreters) never triggers a rerun: each Snakemake invocation (not a dry
run) writes it, per job (``Grid.execution_settings``), to ``results/execution/<hash of the content>.json``
(``execution_file``), names that file on each job's command line (not in the params), and each job merges
its section of that file into its settings (``merged``); a key that the job's params also set is refused,
so the launch never overrides an experiment setting. Another invocation (another config, a dry run) never
changes the settings of jobs already planned or running.
"""

from __future__ import annotations

import json
from pathlib import Path


def execution_file(results: str, settings: dict) -> str:
    """Where an invocation's launch settings are written: named by their content, so that two
    invocations with other settings never share a file, and the same settings always give the same file."""
    import hashlib

    text = json.dumps(settings, sort_keys=True)
    return f"{results}/execution/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def write_if_changed(path: str | Path, settings: dict) -> None:
    """Write the execution file (atomically, and only when its content changes: every Snakemake
    process, also each cluster job, writes the same content)."""
    from mlit.files import atomic_write_text

    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def merged(experiment: dict, execution_file: str | None, section: str | None) -> dict:
    """A job's full settings: its experiment settings (params) plus its section of the execution file
    (``training/<model>``, ``judge_training``, ``generation/<cell>``, ``judge``)."""
    if not execution_file or not section:
        return dict(experiment)
    tree = json.loads(Path(execution_file).read_text(encoding="utf-8"))
    for part in section.split("/"):
        if part not in tree:
            raise KeyError(f"{execution_file}: no section '{section}'; rerun Snakemake to rewrite the file")
        tree = tree[part]
    clash = sorted(set(tree) & set(experiment))
    if clash:
        raise ValueError(f"{execution_file}: section '{section}' sets {clash}, which this job's experiment settings "
                         "(its params) set too; an execution file never overrides an experiment setting. Rerun "
                         "Snakemake to write the file of this config")
    return {**experiment, **tree}
