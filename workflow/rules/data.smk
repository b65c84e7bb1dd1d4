rule prepare_data:
    """Training set of one data cell (dataset x composition x size x seed) as chat JSONL + manifest."""
    input:
        lambda w: GRID.data_inputs(w.data_id),
    output:
        data=f"{RESULTS}/data/{{data_id}}/train.jsonl",
        manifest=f"{RESULTS}/data/{{data_id}}/manifest.json",
    log:
        f"{RESULTS}/logs/prepare_data/{{data_id}}.log",
    params:
        spec=lambda w: as_json(GRID.data_spec(w.data_id)),
    shell:
        "{MLIT} prepare-data --spec {params.spec:q} --out {output.data:q} --manifest {output.manifest:q} > {log:q} 2>&1"
