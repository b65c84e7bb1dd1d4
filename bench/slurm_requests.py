"""What each rule of a config asks Slurm for: the sbatch line the executor plugin builds and the srun
line its job-step executor starts the rule's command with (the CPUs the step gets), per rule and base
model, for attempt 1 and 2 (a retry). From `snakemake -n --profile profiles/slurm` and the installed
plugin's own functions (no cluster needed).

    python bench/slurm_requests.py config/paper.yaml
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]


# the rules the profile sends to Slurm; the others are `localrules` (data, models, tables: where Snakemake runs)
SUBMITTED_RULES = ("train", "train_judge", "generate", "judge")


class Resources(dict):
    __getattr__ = dict.get


def planned_jobs(configfile: str) -> dict[tuple[str, str], dict]:
    """(rule, base model or '-') -> resources of its first job in the dry run."""
    env = {**os.environ, "SLURM_CONF": os.environ.get("SLURM_CONF", str(REPO / "tests/slurm/no_cluster.conf"))}
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", "/tmp/mlit-slurm-requests",
                          "-n", "--profile", str(REPO / "profiles/slurm"), "--configfile", configfile],
                         capture_output=True, text=True, env=env, check=True).stdout
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", out):
        rule = re.match(r"rule (\w+):", block)
        resources = re.search(r"resources: (.*)", block)
        if not rule or not resources or rule.group(1) not in SUBMITTED_RULES:
            continue
        cell = re.search(r"cell=([^,\s]+)", block)
        model = cell.group(1).split("__")[0] if cell else "-"
        values = {}
        for key, value in re.findall(r"(\w+)=([^,]+(?:, (?!\w+=)[^,]+)*)", resources.group(1)):
            values[key] = int(value) if value.isdigit() else value
        jobs.setdefault((rule.group(1), model), values)
    return jobs


def main(configfile: str) -> None:
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting, get_node_setting

    sys.path.insert(0, str(REPO / "src"))
    import yaml

    from mlit.cluster_requests import capped_request
    from mlit.config import Grid

    grid = Grid(yaml.safe_load(Path(configfile).read_text()), dry_run=True)
    for (rule, model), values in sorted(planned_jobs(configfile).items()):
        step = {"train": "train", "generate": "generate", "judge": "judge"}.get(rule)
        for attempt in (1, 2):
            resources = Resources({k: v for k, v in values.items() if k not in ("tmpdir", "disk_mb", "disk", "disk_mib", "mem", "mem_mib")})
            if step:
                resources.update(capped_request(grid.config, step, None if model == "-" or step == "judge" else model,
                                                attempt))
            job = SimpleNamespace(resources=resources, threads=1, is_group=lambda: False)
            params = {"run_uuid": "<uuid>", "slurm_logfile": "<log>", "comment_str": f"rule_{rule}", "workdir": "",
                      "account": "", "partition": f"-p {resources.get('slurm_partition')}"}
            sbatch = re.sub(r" +", " ", get_submit_command(job, params) + set_gres_string(job))
            mpi = bool(resources.get("mpi"))
            srun = "(mpi: the rule's own srun, mlit.train.launch.per_node_command)" if mpi else \
                f"srun -n1 --cpu-bind=q {get_cpu_setting(job, False)} {get_node_setting(job)}"
            print(f"{rule} [{model}] attempt {attempt}:\n  {sbatch}\n  step: {srun}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "config" / "paper.yaml"))
