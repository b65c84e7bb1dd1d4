rule build_base_model:
    """The demo's tiny base model (random Llama + tokenizer trained on the shipped text)."""
    input:
        corpus=GRID.tokenizer_corpus(),
    output:
        directory(f"{RESULTS}/base_models/{{model}}"),
    params:
        spec=lambda w: as_json(GRID.base_models[w.model]["build"]),
    log:
        f"{RESULTS}/logs/build_base_model/{{model}}.log",
    shell:
        "{MLIT} build-model --spec {params.spec:q} --corpus {input.corpus} --out {output} > {log} 2>&1"


def base_model_input(name):
    """The built model directory for `build:` models; nothing for hub ids / existing paths."""
    return [GRID.model_path(name, RESULTS)] if GRID.builds_model(name) else []
