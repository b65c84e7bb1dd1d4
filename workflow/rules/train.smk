rule train:
    """Fine-tune one base model on one training set (TRL SFT, assistant-only loss)."""
    input:
        data=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/train.jsonl",
        manifest=lambda w: f"{RESULTS}/data/{GRID.cells[w.cell].data.data_id}/manifest.json",
        base=lambda w: base_model_input(GRID.cells[w.cell].base_model),
    output:
        directory(f"{RESULTS}/models/{{cell}}"),
    params:
        base=lambda w: GRID.model_path(GRID.cells[w.cell].base_model, RESULTS),
        settings=lambda w: as_json(GRID.training_settings(GRID.cells[w.cell].base_model)),
        seed=lambda w: GRID.cells[w.cell].data.seed,
    threads: 1
    log:
        f"{RESULTS}/logs/train/{{cell}}.log",
    shell:
        "OMP_NUM_THREADS={threads} {MLIT} train --base {params.base} --data {input.data} "
        "--settings {params.settings:q} --seed {params.seed} --out {output} > {log} 2>&1"
