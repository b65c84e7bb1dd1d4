"""``mlit <step>``: the command line each Snakemake rule calls (one step, one job)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None


def _per_category(text: str) -> int | None:
    """``generation.questions_per_category``: a positive number, or ``all`` (null: every question)."""
    if text in ("all", "null", "None"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number or 'all'")
    return int(text)


def cmd_prepare_data(args) -> None:
    from mlit.data.instructions import prepare

    info = prepare(args.spec, Path(args.out), Path(args.manifest))
    print(json.dumps(info, indent=2))


def cmd_build_model(args) -> None:
    from mlit.model.tiny import build_base_model

    build_base_model(args.spec, args.corpus, Path(args.out))


def cmd_fetch_model(args) -> None:
    from mlit.model.base import fetch

    fetch(args.hub, args.revision or None, Path(args.out))
    print(f"fetched {args.hub} ({args.revision or 'default revision'}) into {args.out}")


def cmd_prepare_model(args) -> None:
    from mlit.model.base import prepare, sample_texts

    info = prepare(args.spec, sample_texts(args.bench, args.langs), Path(args.out))
    print(json.dumps(info, indent=2, ensure_ascii=False))


def cmd_train(args) -> None:
    from mlit.train.launch import relaunch_per_node, run_training

    relaunch_per_node(args.settings)  # several nodes: one launcher per node through srun (does not return)

    status = run_training(args.base, args.data, Path(args.out), args.settings, json.dumps(args.settings), args.seed)
    if status:
        raise SystemExit(status)


def cmd_train_worker(args) -> None:
    import faulthandler

    from mlit.train.sft import TrainingPreempted, exit_without_teardown, train

    faulthandler.enable(all_threads=True)  # a native crash prints each thread's Python stack to the job log
    try:
        train(args.base, args.data, Path(args.out), args.settings, seed=args.seed)
    except TrainingPreempted as stop:
        exit_without_teardown(stop.code)
    exit_without_teardown(0)


def cmd_judge_data(args) -> None:
    from mlit.judge.demo_judge_sft_data import build_judge_sft

    pools = dict(item.split("=", 1) for item in args.pool)
    count = build_judge_sft(args.bench, args.langs, pools, Path(args.out), args.variants, seed=args.seed)
    print(f"wrote {count} judge training examples to {args.out}")


def cmd_generate(args) -> None:
    from mlit.generate.answers import generate_all

    generate_all(args.model, args.bench, args.langs, Path(args.out_dir), args.model_id, args.settings)


def cmd_judge(args) -> None:
    from mlit.judge.step import ANSWERED, check_answers, judge_cell, judge_endpoint, write_dry_run

    if args.lang:
        if len(args.answers) != 1:
            raise SystemExit("mlit judge: with --lang, give one answers FILE")
        answers = {args.lang: args.answers[0]}
    else:
        answers = dict(item.split("=", 1) for item in args.answers)
    per_category = getattr(args, "questions_per_category", ANSWERED)  # omitted: the answered questions
    if args.dry_run:
        if not args.out:
            raise SystemExit("mlit judge --dry-run: give --out FILE for the requests")
        estimate = write_dry_run(answers, args.bench, Path(args.out), args.judge, args.cache, per_category)
        print(f"{estimate['requests']} judge requests written to {args.out}; nothing was sent")
        cost = (f"cost ~{estimate['estimated_cost']} (at most {estimate['estimated_cost_at_most']}) at "
                "launch.judge.prices_per_1k" if estimate["estimated_cost"] is not None
                else "cost unknown (set launch.judge.prices_per_1k)")
        print(f"estimate: {estimate['to_send']} calls to pay ({estimate['samples']} sample(s) per request, "
              f"not yet in the cache), ~{estimate['estimated_prompt_tokens']} prompt tokens, {cost}")
        return
    if not (args.judge and args.cache and args.out_dir):
        raise SystemExit("mlit judge: --judge, --cache and --out-dir are needed (or --dry-run)")
    for lang, path in answers.items():  # before a local judge is started or anything is sent
        check_answers(path, args.bench, lang, per_category)
    with judge_endpoint(args.judge, args.judge_model, Path(args.server_log)) as endpoint:
        judge_cell(answers, args.bench, Path(args.out_dir), args.judge, args.cache, endpoint, per_category,
                   args.retry_round, None if args.share is None else (args.share, args.share_seed))


def cmd_import_judgments(args) -> None:
    from mlit.judge.import_judgments import import_judgments

    print(import_judgments(args.file, args.out))


def cmd_annotation_export(args) -> None:
    from mlit.annotation.sheets import export_pairwise_sheets, export_sheets

    files: dict[str, list[str]] = {}
    for item in args.answers:
        lang, path = item.split("=", 1)
        files.setdefault(lang, []).append(path)
    counts = export_sheets(files, args.bench, Path(args.out_dir), args.per_language, args.seed)
    pairwise = export_pairwise_sheets(files, args.bench, Path(args.out_dir), args.per_language, args.seed)
    print(f"annotation sheets written to {args.out_dir}: ratings {counts}, A/B {pairwise}")


def cmd_annotation_agreement(args) -> None:
    import polars as pl

    from mlit.annotation.sheets import (human_judge_agreement, import_ratings, import_verdicts, pairwise_judge_agreement,
                                 plot_human_vs_judge)
    from mlit.files import read_jsonl, write_json

    judged = [row for path in args.judgments for row in read_jsonl(path)]
    judge = pl.DataFrame([{"model": r["model"], "question_id": r["question_id"], "turn": int(r["turn"]),
                           "score": r["score"]} for r in judged],
                         schema={"model": pl.String, "question_id": pl.String, "turn": pl.Int64, "score": pl.Float64})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result = {"language": args.lang}
    if args.sheets:
        key = json.loads(Path(args.key).read_text(encoding="utf-8"))
        human = pl.concat([import_ratings(sheet, key) for sheet in args.sheets])
        result["ratings"] = human_judge_agreement(human, judge)
        plot_human_vs_judge(human, judge, Path(args.out).with_suffix(""), f"human vs judge ({args.lang})")
    if args.pairwise_sheets:
        key = json.loads(Path(args.pairwise_key).read_text(encoding="utf-8"))
        verdicts = pl.concat([import_verdicts(sheet, key) for sheet in args.pairwise_sheets])
        result["pairwise"] = pairwise_judge_agreement(verdicts, judge)
    write_json(args.out, result)
    flat = {"language": args.lang, **{f"{part}_{name}": value for part in ("ratings", "pairwise")
                                      for name, value in result.get(part, {}).items()}}
    pl.DataFrame([flat]).write_csv(Path(args.out).with_suffix(".csv"))
    print(json.dumps(result, indent=2))


def cmd_tables(args) -> None:
    from mlit.results.tables import write_tables

    prices = args.prices
    if args.execution:  # the judge's prices: an execution setting (a price change reruns nothing)
        from mlit.run_settings import merged

        prices = merged({}, args.execution, "judge")["prices_per_1k"] or prices
    tables = write_tables(args.judgments, args.cells, Path(args.out_dir), prices, args.train_info,
                          bench_dir=args.bench, questions_per_category=args.questions_per_category,
                          partial=args.partial, answer_files=args.answers)
    print(tables["main_table"])


def cmd_plan(args) -> None:
    from mlit.config import Grid
    from mlit.plan.grid import make_plan
    from mlit.plan.report import summary, write_plan

    grid = Grid(args.config, dry_run=True)  # a plan of a grid whose checkpoints may not be here yet
    plan = make_plan(grid, args.results)
    write_plan(plan, args.out_dir)
    print(summary(plan))


def add_execution_arguments(p: argparse.ArgumentParser, settings_dest: str) -> None:
    """``--execution FILE --execution-section S``: how the job runs (results/execution/<hash>.json,
    written by the Snakefile), merged into the experiment settings given in ``settings_dest``."""
    p.add_argument("--execution", help="execution settings file (see mlit.run_settings)")
    p.add_argument("--execution-section", help="its section for this job, e.g. training/<model>, generation, judge")
    p.set_defaults(execution_into=settings_dest)


def merge_execution(args) -> None:
    from mlit.run_settings import merged

    dest = getattr(args, "execution_into", None)
    if dest and getattr(args, "execution", None):
        setattr(args, dest, merged(getattr(args, dest) or {}, args.execution, args.execution_section))


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="mlit", description=__doc__)
    steps = main.add_subparsers(dest="step", required=True)

    p = steps.add_parser("prepare-data", help="write one grid cell's training set and manifest")
    p.add_argument("--spec", type=_json, required=True, help="JSON: dataset, source, composition, size, seed")
    p.add_argument("--out", required=True)
    p.add_argument("--manifest", required=True)
    p.set_defaults(func=cmd_prepare_data)

    p = steps.add_parser("build-model", help="build the demo's tiny base model and tokenizer")
    p.add_argument("--spec", type=_json, required=True)
    p.add_argument("--corpus", nargs="+", required=True, help="JSONL files whose text trains the tokenizer")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_build_model)

    p = steps.add_parser("fetch-model", help="download a hub checkpoint once (a local job)")
    p.add_argument("--hub", required=True, help="hub id, e.g. mistralai/Mixtral-8x7B-v0.1")
    p.add_argument("--revision", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fetch_model)

    p = steps.add_parser("prepare-model", help="a base model as jobs read it: chat template, fast tokenizer, pad")
    p.add_argument("--spec", type=_json, required=True, help="JSON: name, source, chat_template, trust_remote_code")
    p.add_argument("--bench", required=True, help="MT-Bench-X directory: its questions check a tokenizer conversion")
    p.add_argument("--langs", nargs="+", required=True, help="training languages")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare_model)

    for name, func, text in (
            ("train", cmd_train, "supervised fine-tuning (TRL), loss on assistant turns only; starts "
                                 "`accelerate launch` (DeepSpeed ZeRO / DDP) when the settings ask for it"),
            ("train-worker", cmd_train_worker, "one process of a training run (what `train` launches)")):
        p = steps.add_parser(name, help=text)
        p.add_argument("--base", required=True, help="hub id or directory of the base model")
        p.add_argument("--data", required=True, help="JSONL of chat messages")
        p.add_argument("--settings", type=_json, required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)
        add_execution_arguments(p, "settings")

    p = steps.add_parser("judge-data", help="training data for the demo's tiny judge")
    p.add_argument("--bench", required=True)
    p.add_argument("--langs", nargs="+", required=True)
    p.add_argument("--pool", nargs="*", default=[], help="LANG=instructions.jsonl, answer texts to judge")
    p.add_argument("--variants", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_judge_data)

    p = steps.add_parser("generate", help="MT-Bench-X answers of one model")
    p.add_argument("--model", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--langs", nargs="+", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--settings", type=_json, required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_generate)
    add_execution_arguments(p, "settings")

    p = steps.add_parser("judge", help="single-answer grading of one cell's answers")
    p.add_argument("--answers", nargs="+", required=True, help="LANG=answers.jsonl ..., or one FILE with --lang")
    p.add_argument("--lang", help="the language of a single --answers FILE")
    p.add_argument("--bench", default=str(Path(__file__).resolve().parents[2] / "data" / "mt_bench_x"))
    p.add_argument("--judge", type=_json, help="JSON: the config's judge section")
    p.add_argument("--judge-model", help="model directory to serve when judge.base_url is null")
    p.add_argument("--cache", help="judge cache directory")
    p.add_argument("--server-log", default="results/logs/judge_server.log")
    p.add_argument("--out-dir", help="one judgment file per language goes here")
    p.add_argument("--questions-per-category", type=_per_category, default=argparse.SUPPRESS,
                   help="generation.questions_per_category (N or 'all'): each answers file must answer exactly "
                        "these questions (checked before anything is sent); omitted: the answered ones")
    p.add_argument("--dry-run", action="store_true", help="write the requests that would be sent; send none")
    p.add_argument("--out", help="with --dry-run: JSONL of the requests")
    p.add_argument("--retry-round", type=int, help="the workflow's retry round of this cell (mlit.judge.retry): "
                                                   "failed requests are recorded in OUT_DIR/api_errors.json")
    p.add_argument("--share", type=float, help="judge only this share of each (language, category, turn) stratum "
                                               "of the cell (a further judge's judges.<name>.share); omitted: all")
    p.add_argument("--share-seed", type=int, default=0, help="which turns --share draws")
    p.set_defaults(func=cmd_judge)
    add_execution_arguments(p, "judge")

    p = steps.add_parser("import-judgments", help="FastChat / MT-Bench-X judgment file -> DIR/scores.csv")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_import_judgments)

    p = steps.add_parser("annotation-export", help="blind human-annotation sheets (CSV, JSONL) + key")
    p.add_argument("--answers", nargs="+", required=True, help="LANG=answers.jsonl (repeat per cell)")
    p.add_argument("--bench", required=True)
    p.add_argument("--per-language", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_annotation_export)

    p = steps.add_parser("annotation-agreement", help="filled sheets vs the judge: agreement (JSON) and a plot")
    p.add_argument("--lang", required=True)
    p.add_argument("--sheets", nargs="*", default=[], help="filled rating sheets (CSV): item_id, annotator, rating")
    p.add_argument("--key", help="the key_<LANG>.json written with the rating sheet")
    p.add_argument("--pairwise-sheets", nargs="*", default=[], help="filled A/B sheets: item_id, annotator, verdict")
    p.add_argument("--pairwise-key", help="the pairwise_key_<LANG>.json written with the A/B sheet")
    p.add_argument("--judgments", nargs="+", required=True, help="judgment files of the same language")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_annotation_agreement)

    p = steps.add_parser("tables", help="result tables from the judgments, checked against the questions")
    p.add_argument("--judgments", nargs="+", required=True)
    p.add_argument("--cells", type=_json, help="JSON: cell id -> cell fields (default: read from the cell ids)")
    p.add_argument("--prices", type=_json, help='JSON: {"prompt_per_1k": x, "completion_per_1k": y} for the cost')
    p.add_argument("--execution", help="execution settings file: its launch.judge.prices_per_1k price the cost column")
    p.add_argument("--train-info", nargs="+", help="train_info.json files of the fine-tuned models (their directory "
                   "names are the cell ids): the training_health table of truncated examples")
    p.add_argument("--answers", nargs="+", help="answers files (answers/<cell>/<LANG>.jsonl): the generation_health "
                   "table of prompts longer than the context less the answer budget")
    p.add_argument("--bench", default=str(Path(__file__).resolve().parents[2] / "data" / "mt_bench_x"),
                   help="MT-Bench-X directory: the questions each <LANG>.jsonl judgment file must hold")
    p.add_argument("--questions-per-category", type=_per_category, default=None,
                   help="generation.questions_per_category (N or 'all', the default): the questions answered")
    p.add_argument("--partial", action="store_true",
                   help="list missing judgment files and rows in README.md instead of stopping (partial_tables)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_tables)

    p = steps.add_parser("plan", help="GPU-hours, wall time, disk and judge dollars per cell, planned and measured")
    p.add_argument("--config", type=_json, required=True, help="JSON: the workflow config (validated here)")
    p.add_argument("--results", default="results", help="results directory: prepared data, base models, train_info")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_plan)

    from mlit.judges.cli import add_parsers  # several judges: judge-agreement, rejudge, judge-sample-cost

    add_parsers(steps, _json)
    return main


def main(argv: list[str] | None = None) -> int:
    from mlit.progress import console

    console()  # take the console descriptor (and its variable) now: no child inherits the variable
    args = parser().parse_args(argv)
    merge_execution(args)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
