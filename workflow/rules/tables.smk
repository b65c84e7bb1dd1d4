JUDGMENT_FILES = [f"{RESULTS}/judgments/{cell}/{lang}.jsonl" for cell in GRID.cells for lang in EVAL_LANGS]


rule tables:
    """Score tables per cell x language x category x turn, and the study's averages."""
    input:
        JUDGMENT_FILES,
    output:
        long=f"{RESULTS}/tables/scores_long.parquet",
        main=f"{RESULTS}/tables/main_table.md",
        detail=f"{RESULTS}/tables/scores_by_cell_lang_category_turn.csv",
    params:
        cells=as_json({cell_id: cell.fields() for cell_id, cell in GRID.cells.items()}),
    log:
        f"{RESULTS}/logs/tables/tables.log",
    shell:
        "{MLIT} tables --judgments {input} --cells {params.cells:q} --out-dir {RESULTS}/tables > {log} 2>&1"
