JUDGE_RESOURCES = cluster_resources("judge")
JUDGE_MODEL_DIR = f"{RESULTS}/judge/model"


if JUDGE_SERVED:

    localrules:
        judge_data,

    rule judge_data:
        """Judge-format examples for the demo's tiny judge (its ratings mean nothing)."""
        input:
            benchmark=GRID.benchmark_files(),
            base=base_model_input(config["judge"]["serve"]["base_model"]),
        output:
            f"{RESULTS}/judge/sft.jsonl",
        log:
            f"{RESULTS}/logs/judge_data/judge_data.log",
        params:
            langs=EVAL_LANGS,
            pool=[f"{lang}={path}" for lang, path in GRID.answer_pool().items()],
            variants=config["judge"]["serve"]["variants_per_question"],
            bench=bench_dir,
        shell:
            "{MLIT} judge-data --bench {params.bench:q} --langs {params.langs:q} --pool {params.pool:q} "
            "--variants {params.variants:q} --out {output:q} > {log:q} 2>&1"

    rule train_judge:
        """Fine-tune the demo judge on judge-format examples (same training code as the grid)."""
        input:
            data=rules.judge_data.output[0],
            base=base_model_input(config["judge"]["serve"]["base_model"]),
        output:
            directory(JUDGE_MODEL_DIR),
        log:
            f"{RESULTS}/logs/train_judge/train_judge.log",
        threads: 2
        resources:
            runtime=lambda w, attempt: cluster_requests.capped_request(
                config, "train", None, attempt
            )["runtime"],
            mem_mb=lambda w, attempt: cluster_requests.capped_request(
                config, "train", None, attempt
            )["mem_mb"],
            # Slurm-only resources (slurm_only: left out of a local run)
            gres=slurm_only("gpu:1"),
            slurm_extra=slurm_only(slurm_signal_option(GRID.judge_training_launch())),
        params:
            settings=as_json(GRID.judge_training_recipe()),
        shell:
            "HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads} MLIT_PROGRESS_FD=3 {MLIT} train --base {input.base:q} --data {input.data:q} "
            "--settings {params.settings:q} --execution {EXECUTION_FILE:q} --execution-section judge_training "
            "--out {output:q} 3>&2 > {log:q} 2>&1"


rule judge:
    """GPT-4-style single-answer grading (MT-Bench-X prompts of each language) of one cell."""
    input:
        answers=[f"{RESULTS}/answers/{{cell}}/{lang}.jsonl" for lang in EVAL_LANGS],
        judge_model=[JUDGE_MODEL_DIR] if JUDGE_SERVED else [],
        benchmark=GRID.benchmark_files(),
    output:
        [f"{RESULTS}/judgments/{{cell}}/{lang}.jsonl" for lang in EVAL_LANGS],
    log:
        judge=f"{RESULTS}/logs/judge/{{cell}}.log",
        server=f"{RESULTS}/logs/judge/{{cell}}.server.log",
    threads: 1
    resources:
        openai_api=1,  # a global cap on concurrent judge jobs (--resources openai_api=N in the profiles)
        runtime=JUDGE_RESOURCES["runtime"],
        mem_mb=JUDGE_RESOURCES["mem_mb"],
    params:
        answers=lambda w: [
            f"{lang}={RESULTS}/answers/{w.cell}/{lang}.jsonl" for lang in EVAL_LANGS
        ],
        judge=as_json(GRID.judge_params()),
        judge_model=["--judge-model", JUDGE_MODEL_DIR] if JUDGE_SERVED else [],
        out_dir=out_dir,
        bench=bench_dir,
        cache=f"{RESULTS}/judge_cache",
        questions_per_category=GRID.questions_per_category(),
        # not a setting: raised by a job that ended with failed requests, so that a rerun retries them
        retry_round=judge_retry_round,
    shell:
        "OMP_NUM_THREADS={threads} MLIT_PROGRESS_FD=3 {MLIT} judge --answers {params.answers:q} --bench {params.bench:q} "
        "--questions-per-category {params.questions_per_category:q} "
        "--judge {params.judge:q} --execution {EXECUTION_FILE:q} --execution-section judge "
        "{params.judge_model:q} --cache {params.cache:q} "
        "--retry-round {params.retry_round:q} --server-log {log.server:q} --out-dir {params.out_dir:q} "
        "3>&2 > {log.judge:q} 2>&1"


# --- further judges (config `judges`): the same judge step on a share of each cell's turns, one directory
# per judge; the main judge's files and the tables never depend on them.
if GRID.extra_judges:

    wildcard_constraints:
        judge="|".join(re.escape(name) for name in GRID.extra_judges),

    rule judge_further:
        """A further judge (config `judges`) grades its share of one cell's turns (MT-Bench-X prompts of each language)."""
        input:
            answers=[f"{RESULTS}/answers/{{cell}}/{lang}.jsonl" for lang in EVAL_LANGS],
            judge_model=served_judge_model,
            benchmark=GRID.benchmark_files(),
        output:
            [
                f"{RESULTS}/judgments/{{judge}}/{{cell}}/{lang}.jsonl"
                for lang in EVAL_LANGS
            ],
        log:
            judge=f"{RESULTS}/logs/judge_further/{{judge}}/{{cell}}.log",
            server=f"{RESULTS}/logs/judge_further/{{judge}}/{{cell}}.server.log",
        threads: 1
        resources:
            openai_api=1,
            runtime=JUDGE_RESOURCES["runtime"],
            mem_mb=JUDGE_RESOURCES["mem_mb"],
        params:
            answers=lambda w: [
                f"{lang}={RESULTS}/answers/{w.cell}/{lang}.jsonl"
                for lang in EVAL_LANGS
            ],
            judge=lambda w: as_json(GRID.extra_judge_params(w.judge)),
            share=lambda w: GRID.extra_judge_share(w.judge)[0],
            share_seed=lambda w: GRID.extra_judge_share(w.judge)[1],
            judge_model=lambda w, input: (
                ["--judge-model", input.judge_model[0]] if input.judge_model else []
            ),
            out_dir=out_dir,
            bench=bench_dir,
            cache=f"{RESULTS}/judge_cache",
            questions_per_category=GRID.questions_per_category(),
            retry_round=judge_retry_round,
        shell:
            "OMP_NUM_THREADS={threads} MLIT_PROGRESS_FD=3 {MLIT} judge --answers {params.answers:q} --bench {params.bench:q} "
            "--questions-per-category {params.questions_per_category:q} "
            "--judge {params.judge:q} --share {params.share:q} --share-seed {params.share_seed:q} "
            "--execution {EXECUTION_FILE:q} --execution-section judges/{wildcards.judge:q} "
            "{params.judge_model:q} --cache {params.cache:q} "
            "--retry-round {params.retry_round:q} --server-log {log.server:q} --out-dir {params.out_dir:q} "
            "3>&2 > {log.judge:q} 2>&1"
