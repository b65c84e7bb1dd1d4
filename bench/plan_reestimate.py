"""How well `snakemake plan` re-estimates training wall time from measured throughput (the CPU demo).

1. trains one cell of each size (the first composition: EN at every size) with the demo's settings;
2. runs `snakemake plan`: the measured throughput of those cells re-estimates every other training cell;
3. trains the other cells and prints, per cell, the re-estimate beside the wall time it then took
   (``train_info.json`` ``wall_time_s``: from the start of the training step's work to the published
   model, without the interpreter's start) and the relative error.

    python bench/plan_reestimate.py --workdir /tmp/plan-bench        # the demo config, --cores 2

Timing on a shared machine moves with its load: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, cores: int, *targets: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                    "--cores", str(cores), *targets], check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    import polars as pl

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    model = config["base_models"][0]["name"]
    dataset = next(iter(config["datasets"]))
    seed = config["seeds"][0]
    first = [f"{model}__{dataset}__{config['compositions'][0]}__{size}__seed{seed}" for size in config["sizes"]]
    snakemake(args.workdir, args.cores, *[f"results/models/{cell}" for cell in first])
    snakemake(args.workdir, args.cores, "plan")
    plan = pl.read_csv(args.workdir / "results" / "plan" / "plan.csv").filter(pl.col("step") == "train")
    estimates = {row["cell"]: row["wall_h"] * 3600 for row in plan.iter_rows(named=True) if row["cell"] not in first}
    throughput = (args.workdir / "results" / "plan" / "plan.md").read_text().split("## Measured throughput")[1]
    print("measured from", first, throughput.split("##")[0].strip(), sep="\n")
    snakemake(args.workdir, args.cores, *[f"results/models/{cell}" for cell in estimates])
    print("\n| cell | re-estimated s | took s | error |\n|---|---|---|---|")
    worst = 0.0
    for cell, estimate in estimates.items():
        took = json.loads((args.workdir / "results" / "models" / cell / "train_info.json").read_text())["wall_time_s"]
        error = (estimate - took) / took
        worst = max(worst, abs(error))
        print(f"| {cell} | {estimate:.1f} | {took:.1f} | {error:+.1%} |")
    print(f"\nlargest error {worst:.1%} (goal: within 25%)")


if __name__ == "__main__":
    main()
