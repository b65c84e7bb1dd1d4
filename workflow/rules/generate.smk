GENERATE_RESOURCES = cluster_resources("generate", cell_model)


rule generate:
    """MT-Bench-X answers of one fine-tuned model in every evaluation language."""
    input:
        model=answered_model,
        benchmark=GRID.benchmark_files(),
    output:
        [f"{RESULTS}/answers/{{cell}}/{lang}.jsonl" for lang in EVAL_LANGS],
    log:
        f"{RESULTS}/logs/generate/{{cell}}.log",
    threads: 1
    resources:
        runtime=GENERATE_RESOURCES["runtime"],
        mem_mb=GENERATE_RESOURCES["mem_mb"],
        # Slurm-only resources (slurm_only: left out of a local run)
        cpus_per_task=slurm_only(GENERATE_RESOURCES["cpus_per_task"]),
        gres=slurm_only(
            lambda w: (
                f"gpu:{GENERATE_RESOURCES['gpus'](w)}"
                if GENERATE_RESOURCES["gpus"](w)
                else None
            )
        ),
    params:
        settings=lambda w: as_json(generation_settings(w)),
        out_dir=out_dir,
        langs=EVAL_LANGS,
        bench=bench_dir,
    shell:
        "HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads} MLIT_PROGRESS_FD=3 {MLIT} generate --model {input.model:q} "
        "--bench {params.bench:q} --langs {params.langs:q} --model-id {wildcards.cell:q} --settings {params.settings:q} "
        "--execution {EXECUTION_FILE:q} --execution-section generation/{wildcards.cell:q} "
        "--out-dir {params.out_dir:q} 3>&2 > {log:q} 2>&1"
