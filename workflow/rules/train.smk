from mlit.train.launch import slurm_signal_option

TRAIN_RESOURCES = cluster_resources("train", cell_model)


rule train:
    """Fine-tune one base model on one training set: TRL SFT, assistant-only loss, DeepSpeed ZeRO
    through `accelerate launch` when configured; resumes from its last checkpoint when rerun.
    """
    input:
        data=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/train.jsonl",
        manifest=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/manifest.json",
        base=lambda w: base_model_input(GRID.cells[w.cell].base_model),
    output:
        directory(f"{RESULTS}/models/{{cell}}"),
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    threads: train_processes
    resources:
        runtime=TRAIN_RESOURCES["runtime"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        # Slurm-only resources (slurm_only: left out of a local run)
        cpus_per_task=slurm_only(TRAIN_RESOURCES["cpus_per_task"]),
        nodes=slurm_only(lambda w: train_slurm(w)["nodes"]),
        gres=slurm_only(lambda w: train_slurm(w)["gres"]),
        tasks=slurm_only(lambda w: train_slurm(w)["tasks"]),
        tasks_per_gpu=slurm_only(lambda w: train_slurm(w)["tasks_per_gpu"]),
        mpi=slurm_only(lambda w: train_slurm(w)["mpi"]),
        # SIGTERM launch.training.preempt_signal_minutes before the time limit: a checkpoint, then the retry resumes
        slurm_extra=slurm_only(lambda w: slurm_signal_option(train_launch(w))),
    params:
        settings=lambda w: as_json(GRID.training_recipe(cell_model(w))),
        execution_section=lambda w: f"training/{cell_model(w)}",
        seed=lambda w: GRID.cells[w.cell].data.seed,
    shell:
        "HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MLIT_PROGRESS_FD=3 {MLIT} train --base {input.base:q} --data {input.data:q} "
        "--settings {params.settings:q} --execution {EXECUTION_FILE:q} "
        "--execution-section {params.execution_section:q} "
        "--seed {params.seed:q} --out {output:q} 3>&2 > {log:q} 2>&1"
