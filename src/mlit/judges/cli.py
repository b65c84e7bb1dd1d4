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


def add_parsers(steps) -> None:
    p = steps.add_parser("judge-agreement", help="agreement of two judges on the answers both rated (CSV + markdown)")
    p.add_argument("--a", nargs="+", required=True, help="judge A's judgment files (results/judgments/<cell>/<LANG>.jsonl)")
    p.add_argument("--b", nargs="+", required=True, help="judge B's judgment files")
    p.add_argument("--name-a", default="a")
    p.add_argument("--name-b", default="b")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output stem: STEM.csv and STEM.md")
    p.set_defaults(func=cmd_judge_agreement)
