# Every judgment file must hold the questions the generation step answers, x 2 turns (checked by `mlit tables`).
QUESTIONS_PER_CATEGORY = GRID.questions_per_category()
JUDGMENT_FILES = [
    f"{RESULTS}/judgments/{cell}/{lang}.jsonl"
    for cell in GRID.answer_cells
    for lang in EVAL_LANGS
]


rule tables:
    """Score tables per cell x language x category x turn, the study's averages, comparisons, plots."""
    input:
        judgments=JUDGMENT_FILES,
        models=[f"{RESULTS}/models/{cell}" for cell in GRID.cells],
        answers=[
            f"{RESULTS}/answers/{cell}/{lang}.jsonl"
            for cell in GRID.answer_cells
            for lang in EVAL_LANGS
        ],
        benchmark=GRID.benchmark_files(),
    output:
        long=f"{RESULTS}/tables/scores_long.parquet",
        main=report(
            f"{RESULTS}/tables/main_table.csv",
            caption="../report/main_table.rst",
            category="Tables",
        ),
        detail=report(
            f"{RESULTS}/tables/scores_by_cell_lang_category_turn.csv",
            caption="../report/detail.rst",
            category="Tables",
        ),
        gain=report(
            f"{RESULTS}/tables/parallel_gain.csv",
            caption="../report/parallel_gain.rst",
            category="Tables",
        ),
        size_effect=report(
            f"{RESULTS}/tables/size_effect.csv",
            caption="../report/size_effect.rst",
            category="Tables",
        ),
        health=report(
            f"{RESULTS}/tables/judge_health.csv",
            caption="../report/judge_health.rst",
            category="Tables",
        ),
        judge_ratings=report(
            f"{RESULTS}/tables/judge_ratings.csv",
            caption="../report/judge_ratings.rst",
            category="Tables",
        ),
        on_language_rate=report(
            f"{RESULTS}/tables/on_language_rate.csv",
            caption="../report/on_language_rate.rst",
            category="Tables",
        ),
        training_health=report(
            f"{RESULTS}/tables/training_health.csv",
            caption="../report/training_health.rst",
            category="Tables",
        ),
        generation_health=report(
            f"{RESULTS}/tables/generation_health.csv",
            caption="../report/generation_health.rst",
            category="Tables",
        ),
        size_plot=report(
            f"{RESULTS}/tables/plots/score_by_size.png",
            caption="../report/score_by_size.rst",
            category="Plots",
        ),
        heatmap=report(
            f"{RESULTS}/tables/plots/composition_x_language.png",
            caption="../report/heatmap.rst",
            category="Plots",
        ),
        categories=report(
            f"{RESULTS}/tables/plots/categories.png",
            caption="../report/categories.rst",
            category="Plots",
        ),
        gain_plot=report(
            f"{RESULTS}/tables/plots/parallel_gain.png",
            caption="../report/parallel_gain.rst",
            category="Plots",
        ),
    log:
        f"{RESULTS}/logs/tables/tables.log",
    params:
        cells=as_json(
            {cell_id: GRID.cell_fields(cell_id) for cell_id in GRID.answer_cells}
        ),
        train_info=[f"{RESULTS}/models/{cell}/train_info.json" for cell in GRID.cells],
        questions_per_category=QUESTIONS_PER_CATEGORY,
        bench=bench_dir,
        out_dir=lambda w, output: str(Path(output.main).parent),
    shell:
        "{MLIT} tables --judgments {input.judgments:q} --cells {params.cells:q} --execution {EXECUTION_FILE:q} "
        "--train-info {params.train_info:q} --answers {input.answers:q} --bench {params.bench:q} "
        "--questions-per-category {params.questions_per_category:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule partial_tables:
    """Tables from the judgments that exist now (a sweep still running or partly failed);
    `results/tables_partial/README.md` lists what is missing. Run: snakemake partial_tables
    """
    input:
        judgments=[path for path in JUDGMENT_FILES if Path(path).exists()],
        benchmark=GRID.benchmark_files(),
    output:
        f"{RESULTS}/tables_partial/main_table.csv",
    log:
        f"{RESULTS}/logs/tables/partial_tables.log",
    params:
        expected=JUDGMENT_FILES,
        cells=as_json(
            {cell_id: GRID.cell_fields(cell_id) for cell_id in GRID.answer_cells}
        ),
        questions_per_category=QUESTIONS_PER_CATEGORY,
        bench=bench_dir,
        out_dir=out_dir,
    shell:
        "{MLIT} tables --judgments {params.expected:q} --cells {params.cells:q} --execution {EXECUTION_FILE:q} "
        "--bench {params.bench:q} --questions-per-category {params.questions_per_category:q} --partial "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


if GRID.judge_pairs():

    wildcard_constraints:
        other="|".join(re.escape(name) for name in ["main", *GRID.extra_judges]),

    localrules:
        judge_agreement,

    rule judge_agreement:
        """A further judge against the main judge (or a further judge listed before it), on the turns both
        rated: agreement (Pearson, Spearman, Kendall, QWK, alpha, exact, within one, mean difference, with
        bootstrap intervals), and the study's comparisons and main table cells under each.
        """
        input:
            judge=lambda w: further_judgment_files(w.judge),
            other=lambda w: judgments_of(w.other),
        output:
            agreement=report(
                f"{RESULTS}/tables/{{judge}}/agreement_with_{{other}}.md",
                caption="../report/judge_agreement.rst",
                category="Judges",
            ),
            agreement_csv=f"{RESULTS}/tables/{{judge}}/agreement_with_{{other}}.csv",
            comparisons=f"{RESULTS}/tables/{{judge}}/comparisons_with_{{other}}.md",
            comparisons_csv=f"{RESULTS}/tables/{{judge}}/comparisons_with_{{other}}.csv",
            main_table=f"{RESULTS}/tables/{{judge}}/main_table_with_{{other}}.csv",
        log:
            f"{RESULTS}/logs/judge_agreement/{{judge}}_with_{{other}}.log",
        params:
            out_dir=lambda w, output: str(Path(output.agreement).parent),
        shell:
            "{MLIT} judges-report --a {input.other:q} --b {input.judge:q} --name-a {wildcards.other:q} "
            "--name-b {wildcards.judge:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


JUDGE_AGREEMENT_FILES = [
    f"{RESULTS}/tables/{judge}/agreement_with_{other}.md"
    for judge, other in GRID.judge_pairs()
]


rule annotation_sheets:
    """Blind sheets for the human annotation study (a target of its own: `snakemake annotation_sheets`)."""
    input:
        answers=[
            f"{RESULTS}/answers/{cell}/{lang}.jsonl"
            for cell in GRID.answer_cells
            for lang in EVAL_LANGS
        ],
        benchmark=GRID.benchmark_files(),
    output:
        [f"{RESULTS}/annotation/sheet_{lang}.csv" for lang in EVAL_LANGS],
    log:
        f"{RESULTS}/logs/annotation_sheets/annotation_sheets.log",
    params:
        answers=[
            f"{lang}={RESULTS}/answers/{cell}/{lang}.jsonl"
            for cell in GRID.answer_cells
            for lang in EVAL_LANGS
        ],
        per_language=config["annotation"]["per_language"],
        seed=config["annotation"]["seed"],
        bench=bench_dir,
        out_dir=out_dir,
    shell:
        "{MLIT} annotation-export --answers {params.answers:q} --bench {params.bench:q} "
        "--per-language {params.per_language:q} --seed {params.seed:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
