# `snakemake plan`: what the grid costs before (and while) it runs. Local and CPU only: it prepares the data of
# local datasets and the base models that are built or on disk, then counts; what is not here (a hub dataset or
# checkpoint) is estimated from the config, and results/plan/plan.md says so.


def plan_inputs():
    data = [
        f"{RESULTS}/data/{data_id}/train.jsonl"
        for data_id, cell in GRID.data_cells.items()
        if "local" in GRID.datasets[cell.dataset]
    ]
    models = [
        GRID.model_path(name, RESULTS)
        for name in GRID.base_models
        if GRID.builds_model(name)
        or (
            not GRID.fetches_model(name)
            and Path(GRID.model_source(name, RESULTS)).exists()
        )
    ]
    return data + models


def plan_state():
    """What the plan measures from (finished trainings and judge cells, by modification time): a new one
    reruns the plan."""
    files = [f"{RESULTS}/models/{cell}/train_info.json" for cell in GRID.cells]
    files += JUDGMENT_FILES
    return as_json({p: Path(p).stat().st_mtime for p in files if Path(p).exists()})


rule plan:
    """GPU-hours, wall time, checkpoint disk and judge dollars per cell, planned and (for cells that ran)
    measured. Run: snakemake plan
    """
    input:
        plan_inputs(),
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
        measured=lambda w: plan_state(),
        out_dir=out_dir,
    shell:
        "HF_HUB_OFFLINE=1 {MLIT} plan --config {params.config:q} --results {RESULTS:q} --out-dir {params.out_dir:q} > {log:q} 2>&1 "
        "&& cat {log:q}"
