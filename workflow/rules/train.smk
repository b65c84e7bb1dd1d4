def train_settings(wildcards):
    return GRID.training_settings(GRID.cells[wildcards.cell].base_model)


def train_processes(wildcards):
    """Local cores a training job needs: one per process (a GPU job's CPUs come from the profile)."""
    return train_settings(wildcards).get("processes_per_node") or 1


def gpus_per_node(wildcards):
    return train_settings(wildcards).get("gpus_per_node", 1)


TRAIN_RESOURCES = cluster_resources("train", cell_model)


def multi_node(wildcards):
    return train_settings(wildcards).get("nodes", 1) > 1


rule train:
    """Fine-tune one base model on one training set: TRL SFT, assistant-only loss, DeepSpeed ZeRO
    through `accelerate launch` when configured; resumes from its last checkpoint when rerun."""
    input:
        data=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/train.jsonl",
        manifest=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/manifest.json",
        base=lambda w: base_model_input(GRID.cells[w.cell].base_model),
    output:
        directory(f"{RESULTS}/models/{{cell}}"),
    params:
        base=lambda w: GRID.model_path(GRID.cells[w.cell].base_model, RESULTS),
        settings=lambda w: as_json(train_settings(w)),
        seed=lambda w: GRID.cells[w.cell].data.seed,
        # several nodes: one launcher per node (the plugin does not wrap `mpi` jobs in srun); built from
        # integers only, so it is the one placeholder left unquoted in a shell command
        per_node=lambda w: (f"srun --nodes={train_settings(w)['nodes']} --ntasks-per-node=1 "
                            if multi_node(w) else ""),
    threads: train_processes
    resources:
        runtime=TRAIN_RESOURCES["runtime"],
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        cpus_per_gpu=TRAIN_RESOURCES["cpus_per_gpu"],
        nodes=lambda w: train_settings(w).get("nodes", 1),
        # GPUs per node (gres is per node; `gpu` would be per job)
        gres=lambda w: f"gpu:{gpus_per_node(w)}" if gpus_per_node(w) else None,
        # several nodes: one task (one launcher) per node; tasks_per_gpu=0 keeps the plugin from
        # turning `tasks` into --ntasks-per-gpu for GPU jobs
        tasks=lambda w: train_settings(w)["nodes"] if multi_node(w) else None,
        tasks_per_gpu=lambda w: 0 if multi_node(w) else None,
        mpi=lambda w: "srun" if multi_node(w) else None,
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    shell:
        "HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 {params.per_node}{MLIT} train --base {params.base:q} --data {input.data:q} "
        "--settings {params.settings:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"
