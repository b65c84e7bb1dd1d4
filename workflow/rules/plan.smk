# `snakemake plan`: what the grid costs before (and while) it runs. Local and CPU only: it prepares the data of
# local datasets and the base models that are built or on disk, then counts; what is not here (a hub dataset or
# checkpoint) is estimated from the config, and results/plan/plan.md says so.
from mlit.plan.inputs import plan_inputs, plan_state


rule plan:
    """GPU-hours, wall time, checkpoint disk and judge dollars per cell, planned and (for cells that ran)
    measured. Run: snakemake plan
    """
    input:
        plan_inputs(GRID, RESULTS),
    output:
        csv=report(
            f"{RESULTS}/plan/plan.csv",
            caption="../report/plan.rst",
            category="Plan",
        ),
        md=report(
            f"{RESULTS}/plan/plan.md",
            caption="../report/plan.rst",
            category="Plan",
        ),
    log:
        f"{RESULTS}/logs/plan/plan.log",
    params:
        config=lambda w: as_json(config),
        measured=lambda w: plan_state(GRID, RESULTS, JUDGMENT_FILES),
        results=lambda w, output: str(Path(output.csv).parents[1]),
        out_dir=out_dir,
    shell:
        "HF_HUB_OFFLINE=1 {MLIT} plan --config {params.config:q} --results {params.results:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1 && cat {log:q}"
