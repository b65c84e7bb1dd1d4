rule generate:
    """MT-Bench-X answers of one fine-tuned model in every evaluation language."""
    input:
        model=f"{RESULTS}/models/{{cell}}",
        benchmark=GRID.benchmark_files(),
    output:
        [f"{RESULTS}/answers/{{cell}}/{lang}.jsonl" for lang in EVAL_LANGS],
    params:
        settings=as_json(config["generation"]),
        out_dir=lambda w: f"{RESULTS}/answers/{w.cell}",
        langs=" ".join(EVAL_LANGS),
    threads: 1
    log:
        f"{RESULTS}/logs/generate/{{cell}}.log",
    shell:
        "OMP_NUM_THREADS={threads} {MLIT} generate --model {input.model} --bench {BENCH} --langs {params.langs} "
        "--model-id {wildcards.cell} --settings {params.settings:q} --out-dir {params.out_dir} > {log} 2>&1"
