"""The ``mlit`` subcommands of several judges (registered by ``mlit.cli.parser``)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BENCH = str(Path(__file__).resolve().parents[3] / "data" / "mt_bench_x")


def cmd_judge_agreement(args) -> None:
    from mlit.judges.agreement import agreement_table, judgment_ratings, markdown, write_agreement

    table = agreement_table(judgment_ratings(args.a), judgment_ratings(args.b), args.name_a, args.name_b,
                            n_boot=args.n_boot, seed=args.seed)
    paths = write_agreement(table, args.out)
    print(markdown(table))
    print(f"written: {', '.join(map(str, paths))}")


def judge_section(args) -> dict:
    """The judge's settings: ``--judge JSON``, else the ``judge`` section of ``--configfile`` with its
    ``launch.judge`` section (key variable, concurrency, timeouts, prices) merged over it, as a judge job gets them."""
    if args.judge:
        return args.judge
    if not args.configfile:
        raise SystemExit(f"mlit {args.step}: give --judge JSON (the config's judge section) or --configfile FILE")
    import yaml

    config = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8")) or {}
    if not isinstance(config.get("judge"), dict):
        raise SystemExit(f"{args.configfile}: no judge section (judge: model, base_url, ...)")
    launch = config.get("launch") if isinstance(config.get("launch"), dict) else {}
    return {**config["judge"], **(launch.get("judge") or {})}


def cmd_rejudge(args) -> None:
    from mlit.judge.step import judge_endpoint
    from mlit.judges.agreement import markdown
    from mlit.judges.rejudge import read_reference, rejudge

    judge = judge_section(args)
    for path in args.file:  # checked before a local judge is started or anything is sent
        read_reference(path, args.bench, args.lang)
    with judge_endpoint(judge, args.judge_model, Path(args.server_log)) as endpoint:
        table = rejudge(args.file, judge, args.cache, args.out_dir, args.bench, endpoint, args.lang, args.n_boot,
                        args.seed, args.sample)
    print(markdown(table))
    print(f"written: {args.out_dir}/judgments.jsonl, agreement.csv, agreement.md")


def write_comparisons(args, stem: Path, main_table: Path, overlap_only: bool, heading: str):
    """The study's comparisons under judge A (``args.a``) and B (``args.b``): ``stem``.csv and .md, and the main
    table's cells under each in ``main_table``; returns the comparison table (judge-comparisons, judges-report)."""
    from mlit.files import atomic_write_text
    from mlit.judges.comparisons import comparison_check, main_table_check, summary
    from mlit.results.tables import load_long, to_markdown

    frames = []
    for files in (args.a, args.b):
        frame, missing = load_long(files)
        if missing:
            raise SystemExit(f"mlit {args.step}: missing judgment files: {', '.join(missing)}")
        frames.append(frame)
    check = comparison_check(*frames, n_boot=args.n_boot, seed=args.seed, overlap_only=overlap_only)
    atomic_write_text(stem.with_suffix(".csv"), check.write_csv())
    atomic_write_text(main_table, main_table_check(*frames, overlap_only=overlap_only).write_csv())
    atomic_write_text(stem.with_suffix(".md"), f"{heading}\n\n{to_markdown(summary(check))}\n{to_markdown(check)}")
    return check


def cmd_judge_comparisons(args) -> None:
    from mlit.judges.comparisons import summary
    from mlit.results.tables import to_markdown

    stem = Path(args.out)
    check = write_comparisons(args, stem, stem.parent / f"{stem.name}_main_table.csv", not args.all_turns,
                              f"The study's comparisons under {args.name_a} (a) and {args.name_b} (b)")
    print(to_markdown(summary(check)))
    print(f"written: {stem.with_suffix('.csv')}, {stem.with_suffix('.md')}, {stem.name}_main_table.csv")


def cmd_judges_report(args) -> None:
    """The workflow's judge_agreement step: judge B (a further judge) against judge A on the turns both rated:
    the agreement (judge-agreement, less the turns the off-language rule scored for both) and the study's
    comparisons and main table cells under each (judge-comparisons), in OUT_DIR."""
    from mlit.judges.agreement import agreement_table, judgment_ratings, without_rule_on_both, write_agreement

    out = Path(args.out_dir)
    ratings_a, ratings_b, left_out = without_rule_on_both(judgment_ratings(args.a), judgment_ratings(args.b))
    table = agreement_table(ratings_a, ratings_b, args.name_a, args.name_b, n_boot=args.n_boot, seed=args.seed)
    write_agreement(table, out / f"agreement_with_{args.name_a}")
    write_comparisons(args, out / f"comparisons_with_{args.name_a}", out / f"main_table_with_{args.name_a}.csv", True,
                      f"The study's comparisons under {args.name_a} (a) and {args.name_b} (b), on the turns both rated")
    overall = table.filter(table["by"] == "all").row(0, named=True)
    print(f"{args.name_b} vs {args.name_a}: {overall['n']} turns both rated ({left_out} that the off-language rule "
          f"scored for both left out), exact "
          f"agreement {overall['exact']:.2f}, within one {overall['within_one']:.2f}, mean difference "
          f"{overall['mean_difference']:+.2f}; written to {out}/")


def cmd_judge_sample_cost(args) -> None:
    import polars as pl
    import yaml

    from mlit.config import Grid
    from mlit.files import atomic_write_text
    from mlit.judges.cost import two_judge_cost
    from mlit.results.tables import to_markdown

    config = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    grid = Grid(config, dry_run=True)  # a plan: checkpoints need not exist
    table = two_judge_cost(grid, args.fraction, args.seed, args.second_judge)
    text = (f"Judging {len(grid.cells)} cells x {len(grid.eval_languages)} languages ({args.configfile}): "
            f"{grid.config['judge']['model']} on a {args.fraction:.0%} sample stratified by cell, language, category "
            f"and turn (seed {args.seed}), plus a second judge on everything; dollars at each judge's prices_per_1k "
            "(none: unknown)\n\n" + to_markdown(table.with_columns(pl.col("dollars").round(2))))
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".csv"), table.write_csv())
        atomic_write_text(Path(args.out).with_suffix(".md"), text)
    print(text)


def add_two_judges(p) -> None:
    """The two judges' judgment files and names, as judge-agreement and judge-comparisons read them."""
    p.add_argument("--a", nargs="+", required=True, help="judge A's judgment files (results/judgments/<cell>/<LANG>.jsonl)")
    p.add_argument("--b", nargs="+", required=True, help="judge B's judgment files of the same cells")
    p.add_argument("--name-a", default="a")
    p.add_argument("--name-b", default="b")


def add_parsers(steps, _json) -> None:
    """The subcommands, on ``mlit.cli``'s subparsers; ``_json`` its JSON argument type (passed in: this
    module is imported by mlit.cli, never the other way round)."""
    p = steps.add_parser("judge-sample-cost", help="cost of the config's judge on a stratified sample plus a second "
                                                   "judge on everything, against the config's judge on everything")
    p.add_argument("--configfile", required=True, help="the grid's config, e.g. config/paper.yaml")
    p.add_argument("--fraction", type=float, default=0.1, help="share of each (cell, language, category, turn) stratum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--second-judge", type=_json, default=None,
                   help='JSON: {"model": ..., "prices_per_1k": {"prompt_per_1k": x, "completion_per_1k": y}}')
    p.add_argument("--out", help="output stem: STEM.csv and STEM.md")
    p.set_defaults(func=cmd_judge_sample_cost)

    p = steps.add_parser("judge-comparisons", help="the study's comparisons and main table under two judges: sign, intervals, verdict")
    add_two_judges(p)
    p.add_argument("--all-turns", action="store_true", help="each judge on all it rated (default: the common turns)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output stem: STEM.csv and STEM.md")
    p.set_defaults(func=cmd_judge_comparisons)

    p = steps.add_parser("rejudge", help="re-send a FastChat judgment file's prompts to a judge; agreement with its scores")
    p.add_argument("file", nargs="+", help="FastChat single-answer judgments, e.g. "
                   "data/mt_bench_x_judgments/EN/gpt-4_single.jsonl, or mlit's (results/judgments/<cell>/<LANG>.jsonl)")
    p.add_argument("--judge", type=_json, help="JSON: the config's judge section")
    p.add_argument("--configfile", help="a config file whose judge section is the judge (instead of --judge)")
    p.add_argument("--judge-model", help="model directory to serve when judge.base_url is null")
    p.add_argument("--server-log", default="results/logs/rejudge_server.log")
    p.add_argument("--cache", default="results/judge_cache", help="judge cache directory (shared with the judge step)")
    p.add_argument("--bench", default=DEFAULT_BENCH, help="MT-Bench-X directory: categories and system prompts")
    p.add_argument("--lang", help="the file's language, if its question ids have no suffix (81_EN)")
    p.add_argument("--sample", type=float, help="re-send only this share of each (model, language, category, turn) "
                                                "stratum (at least one), drawn with --seed")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--seed", type=int, default=0, help="the sample's and the bootstrap's seed")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_rejudge)

    p = steps.add_parser("judges-report", help="the workflow's judge_agreement step: agreement (off-language rule "
                                               "left out), comparisons and main table of two judges, in OUT_DIR")
    add_two_judges(p)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_judges_report)

    p = steps.add_parser("judge-agreement", help="agreement of two judges on the answers both rated (CSV + markdown)")
    add_two_judges(p)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output stem: STEM.csv and STEM.md")
    p.set_defaults(func=cmd_judge_agreement)
