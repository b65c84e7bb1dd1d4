rule build_base_model:
    """The demo's tiny base model (random Llama + tokenizer trained on the shipped text)."""
    input:
        corpus=GRID.tokenizer_corpus(),
    output:
        directory(f"{RESULTS}/built_models/{{model}}"),
    log:
        f"{RESULTS}/logs/build_base_model/{{model}}.log",
    params:
        spec=lambda w: as_json(GRID.base_models[w.model]["build"]),
    shell:
        "{MLIT} build-model --spec {params.spec:q} --corpus {input.corpus:q} --out {output:q} > {log:q} 2>&1"


rule fetch_base_model:
    """A hub checkpoint, downloaded once where Snakemake runs (compute nodes often have no network)."""
    output:
        directory(f"{RESULTS}/hub_models/{{model}}"),
    log:
        f"{RESULTS}/logs/fetch_base_model/{{model}}.log",
    params:
        hub=lambda w: GRID.base_models[w.model]["hub"],
        revision=lambda w: GRID.base_models[w.model].get("revision") or "",
    shell:
        "{MLIT} fetch-model --hub {params.hub:q} --revision {params.revision:q} --out {output:q} > {log:q} 2>&1"


rule prepare_base_model:
    """What every job reads: the checkpoint linked, a fast tokenizer with the chat template and a pad
    token, and mlit_base.json (chat format, end-of-turn token, trust_remote_code)."""
    input:
        source=base_model_source_input,
        benchmark=GRID.benchmark_files(),
    output:
        directory(f"{RESULTS}/base_models/{{model}}"),
    log:
        f"{RESULTS}/logs/prepare_base_model/{{model}}.log",
    params:
        spec=lambda w: as_json(GRID.base_model_spec(w.model, RESULTS)),
        langs=GRID.training_languages(),
        bench=bench_dir,
    shell:
        "HF_HUB_OFFLINE=1 {MLIT} prepare-model --spec {params.spec:q} --bench {params.bench:q} --langs {params.langs:q} "
        "--out {output:q} > {log:q} 2>&1"
