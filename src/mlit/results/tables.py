"""Result tables (polars): judgments in long format (parquet) and the study's aggregates as CSV and
Markdown. Means use parsed ratings only; failed judgments are counted in ``n_failed`` and listed,
never averaged as a number; a failure's kind is its row's ``failure`` (``mlit.records.FAILURE_KINDS``),
never read from its error text. Every judgment file is first checked against what the config expects
(``validate_judgments``): a missing or duplicated row, an unknown question or a bad score stops the
step; partial tables list the missing files and rows instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mlit.results.analysis import (judge_health, parallel_gain, plot_category_bars, plot_heatmap, plot_parallel_gain,
                                   plot_score_by_size, score_by_size, size_effect)
from mlit.results.judge_spread import judge_caption, judge_ratings, on_language_rate, short_caption
from mlit.files import DataFileError, atomic_write_text
from mlit.records import FAILURE_KINDS, row_problem
from mlit.cells import cell_fields
from mlit.data.mtbench import load_questions

CELL_COLUMNS = ["cell", "base_model", "dataset", "composition", "size", "seed"]


def load_long(judgment_files: list[str], cells: dict[str, dict] | None = None) -> tuple[pl.DataFrame, list[str]]:
    """All judgments as one row per (cell, language, question, turn); and the missing files.
    Without ``cells``, cell fields are read from the cell ids. ``failure`` is the row's recorded kind
    (``FAILURE_KINDS``; null for a score), ``failed`` is ``failure`` not null; a row without the field
    (written before it existed) reads as null when it has a score, and stops here without one (re-run
    the judge step), as in ``validate_judgments``."""
    records, missing = [], []
    for path in judgment_files:
        if not Path(path).exists():
            missing.append(path)
            continue
        for number, row in _read_numbered(Path(path)):
            failure = row.get("failure")
            if (failure not in FAILURE_KINDS) if row["score"] is None else (failure is not None):
                raise DataFileError(f"{path}:{number}: score {json.dumps(row['score'])} with failure "
                                    f"{json.dumps(failure)} is not a score nor a recorded judge failure "
                                    f"({', '.join(FAILURE_KINDS)}); re-run the judge step for this file")
            cell = cells.get(row["model"]) if cells is not None else cell_fields(row["model"])
            if cell is None:
                raise ValueError(f"{path}: model '{row['model']}' is not a cell of the grid")
            records.append({**cell, "examples_per_language": cell.get("examples_per_language"), "lang": row["lang"], "question_id": row["question_id"],
                            "category": row["category"], "turn": int(row["turn"]),
                            "score": None if row["score"] is None else float(row["score"]),
                            "failed": failure is not None, "failure": failure,
                            "error": row.get("error"),
                            "judgment": row.get("judgment"), "on_language": row.get("on_language", True),
                            "prompt_tokens": (row.get("usage") or {}).get("prompt_tokens", 0),
                            "completion_tokens": (row.get("usage") or {}).get("completion_tokens", 0),
                            "score_spread": row.get("score_spread"),
                            "judge": _judge_name(row.get("judge"))})
    schema = {**{c: pl.String for c in CELL_COLUMNS}, "seed": pl.Int64, "examples_per_language": pl.Int64,
              "lang": pl.String,
              "question_id": pl.String, "category": pl.String, "turn": pl.Int64, "score": pl.Float64,
              "failed": pl.Boolean, "failure": pl.String, "error": pl.String, "judgment": pl.String,
              "on_language": pl.Boolean, "prompt_tokens": pl.Int64,
              "completion_tokens": pl.Int64, "score_spread": pl.Float64, "judge": pl.String}
    return pl.DataFrame(records, schema=schema), missing


def _judge_name(judge) -> str | None:
    """The judge model of a judgment row: FastChat's ``judge`` is ``[model, prompt name]``."""
    if isinstance(judge, (list, tuple)):
        return str(judge[0]) if judge else None
    return None if judge is None else str(judge)


def _read_numbered(path: Path) -> list[tuple[int, object]]:
    """(1-based line number, parsed JSON) for each non-blank line of a JSONL file."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataFileError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    return rows


def validate_judgments(judgment_files: list[str], bench_dir: str | Path | None = None,
                       questions_per_category: int | None = None, partial: bool = False) -> dict:
    """Check the judgment files against what the config expects; return what is missing.

    A file ``<cell>/<LANG>.jsonl`` holds one row per (question, turn): the questions the generation step
    answers (``mtbench.load_questions(bench_dir, LANG, questions_per_category)``) x turns 1 and 2 —
    one row per request also with ``judge.samples`` > 1 (the row's score is the samples' median).
    Each row has the file's cell as ``model`` and its ``lang``, turn 1 or 2, and a score that is a JSON number in 1..10 — or is a
    recorded judge failure (score null with its ``error`` and a ``failure`` kind of ``FAILURE_KINDS``:
    counted in ``n_failed``, never averaged); a score with a ``failure`` kind, a kind not in
    ``FAILURE_KINDS``, or score null without one (a file from before the field: re-run the judge) is invalid.
    An invalid row, a duplicated (question, turn), an unknown question id or a file listed twice raises DataFileError
    naming file, line and problem. Missing files and rows raise too, unless ``partial``: then they are
    returned as ``{"files": [{cell, lang, file, questions}], "rows": [{cell, lang, file, question_id, turns}]}``.
    Without ``bench_dir``, question ids are not checked against the benchmark (unknown or missing)."""
    problems, missing = [], {"files": [], "rows": []}
    selections: dict[str, list[str]] = {}
    lines: dict[str, tuple[int, int]] = {}  # file -> (rows, last line)
    note = "" if questions_per_category is None else f" (generation.questions_per_category: {questions_per_category})"
    listed: set[Path] = set()
    for path in map(Path, judgment_files):
        lang = path.stem
        expected = None
        if path.resolve() in listed:
            problems.append(f"{path}: listed twice (each judgment file is counted once)")
            continue
        listed.add(path.resolve())
        if bench_dir is not None:
            if not (Path(bench_dir) / lang / "question.jsonl").exists():
                problems.append(f"{path}: the file name says language {lang!r}, which {bench_dir} has no questions for")
                continue
            if lang not in selections:
                selections[lang] = [q["question_id"] for q in load_questions(bench_dir, lang, questions_per_category)]
            expected = selections[lang]
        expected_ids = None if expected is None else set(expected)
        if not path.exists():
            missing["files"].append({"cell": path.parent.name, "lang": lang, "file": str(path),
                                     "questions": None if expected is None else len(expected)})
            continue
        seen: dict[tuple, int] = {}  # (question_id, turn) -> line, invalid rows too (reported once, not as missing)
        cell = path.parent.name  # results/judgments/<cell>/<LANG>.jsonl: the file's cell and language
        numbered = _read_numbered(path)
        lines[str(path)] = (len(numbered), numbered[-1][0] if numbered else 0)
        for number, row in numbered:
            problem = row_problem(row, lang, expected_ids, note, cell)
            key = (str(row.get("question_id")), row.get("turn")) if isinstance(row, dict) else None
            if problem is None and key in seen:
                problem = f"question_id {key[0]!r} turn {key[1]} is judged twice (first on line {seen[key]})"
            if problem:
                problems.append(f"{path}:{number}: {problem}")
            if key is not None and isinstance(key[1], int):
                seen.setdefault(key, number)
        if expected is not None:
            for question_id in expected:
                turns = [turn for turn in (1, 2) if (question_id, turn) not in seen]
                if turns:
                    missing["rows"].append({"cell": cell, "lang": lang, "file": str(path), "question_id": question_id,
                                            "turns": turns})
    if not partial:
        problems += [f"{m['file']}: missing (the tables step expects every judgment file)" for m in missing["files"]]
        by_file: dict[str, list[str]] = {}
        for m in missing["rows"]:
            by_file.setdefault(m["file"], []).append(f"{m['question_id']} turn{'s' * (len(m['turns']) > 1)} "
                                                      f"{' and '.join(map(str, m['turns']))}")
        for file, items in by_file.items():
            rows, last = lines[file]
            absent = sum(len(m["turns"]) for m in missing["rows"] if m["file"] == file)
            problems.append(f"{file}: {absent} of the {2 * len(selections[Path(file).stem])} expected rows missing "
                            f"({rows} rows, last line {last}){note}: " + ", ".join(items))
    if problems:
        shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        raise DataFileError(f"{len(problems)} problem(s) in the judgments:\n" + "\n".join(shown))
    return missing


def _aggregate(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return (frame.group_by(by, maintain_order=True)
            .agg(pl.col("score").mean().round(3).alias("mean_score"),
                 pl.col("score").is_not_null().sum().alias("n_scored"),
                 pl.col("failed").sum().alias("n_failed"))
            .sort(by))


def aggregates(long: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The tables of the study, by name."""
    cell = CELL_COLUMNS
    both_turns = long.with_columns(pl.lit("all").alias("turn_label"))
    per_turn = long.with_columns(pl.col("turn").cast(pl.String).alias("turn_label"))
    stacked = pl.concat([per_turn, both_turns])
    by_lang = _aggregate(stacked, cell + ["lang", "turn_label"])
    overall = _aggregate(stacked, cell + ["turn_label"])
    main = (by_lang.filter(pl.col("turn_label") == "all")
            .pivot(on="lang", index=cell, values="mean_score")
            .join(overall.filter(pl.col("turn_label") == "all").select(cell + ["mean_score", "n_failed"])
                  .rename({"mean_score": "average"}), on=cell)
            .sort(cell))
    return {
        "scores_by_cell_lang_category_turn": _aggregate(long, cell + ["lang", "category", "turn"]),
        "scores_by_cell_lang_turn": by_lang.rename({"turn_label": "turn"}),
        "scores_by_cell_category": _aggregate(long, cell + ["category"]),
        "scores_by_cell": overall.rename({"turn_label": "turn"}),
        "main_table": main,
        "judge_failures": (long.filter(pl.col("failed"))
                           .select(cell + ["lang", "question_id", "turn", "failure", "error"]).sort(cell + ["lang"])),
    }


def to_markdown(frame: pl.DataFrame, caption: str | None = None) -> str:
    def cell(value) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return (f"{caption}\n\n" if caption else "") + "\n".join([header, rule, *lines]) + "\n"


def to_latex(frame: pl.DataFrame, caption: str | None = None) -> str:
    def cell(value) -> str:
        text = "" if value is None else str(value)
        for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                              ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
            text = text.replace(char, escaped)
        return text

    lines = [f"% {line}" for line in (caption or "").splitlines()]
    lines += [r"\begin{tabular}{" + "l" * len(frame.columns) + "}", r"\toprule",
             " & ".join(cell(c) for c in frame.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in frame.iter_rows()]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


TRAINING_HEALTH_SCHEMA = {"cell": pl.String, "lang": pl.String, "examples": pl.Int64, "truncated_examples": pl.Int64,
                          "answer_tokens": pl.Int64, "answer_tokens_lost": pl.Int64,
                          "answer_tokens_lost_fraction": pl.Float64}


def training_health(train_info_files: list[str]) -> pl.DataFrame:
    """One row per cell x language from the fine-tuned models' ``train_info.json`` (the cell id is the
    file's parent directory): examples cut at ``training.max_length`` and the answer tokens lost.
    Files without a ``truncation`` report (models trained before it existed) are skipped with a note."""
    records = []
    for path in train_info_files:
        info = json.loads(Path(path).read_text())
        if "truncation" not in info:
            print(f"training_health: {path} has no truncation report (an older model); skipped")
            continue
        for lang, stats in info["truncation"].items():
            records.append({"cell": Path(path).parent.name, "lang": lang,
                            **{column: stats[column] for column in list(TRAINING_HEALTH_SCHEMA)[2:]}})
    return pl.DataFrame(records, schema=TRAINING_HEALTH_SCHEMA).sort(["cell", "lang"])


def write_tables(judgment_files: list[str], cells: dict[str, dict] | None, out_dir: Path,
                 prices: dict | None = None, train_info_files: list[str] | None = None, *,
                 bench_dir: str | Path | None = None, questions_per_category: int | None = None,
                 partial: bool = False, answer_files: list[str] | None = None) -> dict[str, pl.DataFrame]:
    """The tables, after ``validate_judgments``: an invalid judgment file stops here. With ``partial``
    (partial_tables), missing files and rows are listed in README.md instead of stopping."""
    expected = validate_judgments(judgment_files, bench_dir, questions_per_category, partial)
    long, missing = load_long(judgment_files, cells)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".scores_long.parquet.tmp"
    long.write_parquet(tmp)
    tmp.replace(out_dir / "scores_long.parquet")
    tables = aggregates(long)
    tables["parallel_gain"] = parallel_gain(long)
    tables["score_by_size"] = score_by_size(long)
    tables["size_effect"] = size_effect(long)
    tables["judge_health"] = judge_health(long, prices)
    tables["judge_ratings"] = judge_ratings(long)
    tables["on_language_rate"] = on_language_rate(long)
    caption = "What these scores measure: " + judge_caption(tables["judge_ratings"]) + "."
    note = short_caption(tables["judge_ratings"])
    if train_info_files is not None:
        tables["training_health"] = training_health(train_info_files)
    report = ["# MT-Bench-X results", "", caption, ""]
    if answer_files is not None:  # prompts that did not fit the context (mlit.generate.prompt_budget)
        from mlit.results.generation_health import generation_health, report_lines

        tables["generation_health"] = generation_health(answer_files)
        report += report_lines(tables["generation_health"])
    if expected["files"] or expected["rows"]:
        files = sorted({m["file"] for m in expected["rows"]})
        report += [f"**Partial results**: {len(expected['files'])} judgment file(s) missing, "
                   f"{sum(len(m['turns']) for m in expected['rows'])} judgment row(s) missing from "
                   f"{len(files)} file(s).", ""]
        if expected["files"]:
            report += ["Missing judgment files (cell, language: file):", ""]
            report += [f"- {m['cell']}, {m['lang']}: {m['file']}"
                       + ("" if m["questions"] is None else f" (all {m['questions']} questions)")
                       for m in expected["files"]] + [""]
        if expected["rows"]:
            report += ["Missing judgments (cell, language: question ids and turns):", ""]
            for file in files:
                items = [m for m in expected["rows"] if m["file"] == file]
                report.append(f"- {items[0]['cell']}, {items[0]['lang']}: " + ", ".join(
                    f"{m['question_id']} (turn{'s' * (len(m['turns']) > 1)} {', '.join(map(str, m['turns']))})"
                    for m in items) + f" — {file}")
            report.append("")
    for name, table in tables.items():  # parquet is the source; CSV, Markdown and LaTeX are renderings
        table.write_parquet(out_dir / f".{name}.parquet.tmp")
        (out_dir / f".{name}.parquet.tmp").replace(out_dir / f"{name}.parquet")
        atomic_write_text(out_dir / f"{name}.csv", table.write_csv())
        atomic_write_text(out_dir / f"{name}.md", to_markdown(table, caption))
        atomic_write_text(out_dir / f"{name}.tex", to_latex(table, caption))
        if name in ("main_table", "on_language_rate", "judge_ratings", "scores_by_cell", "parallel_gain"):
            report += [f"## {name}", "", to_markdown(table), ""]
    if long["score"].is_not_null().any():
        plots = out_dir / "plots"
        plots.mkdir(exist_ok=True)
        plot_score_by_size(tables["score_by_size"], plots / "score_by_size", note)
        plot_heatmap(long, plots / "composition_x_language", note)
        plot_category_bars(long, plots / "categories", note)
        plot_parallel_gain(tables["parallel_gain"], plots / "parallel_gain", note)
        report += ["Plots: plots/score_by_size.{png,svg} (score against examples per language as trained, with 95% "
                   "intervals, one panel per language and one pooled over them), plots/composition_x_language.{png,svg} "
                   "(heatmap, pooled over sizes), plots/categories.{png,svg} (score per category and composition, one "
                   "panel per language, pooled over sizes), plots/parallel_gain.{png,svg} (relative gain in percent of "
                   "each multilingual composition with its 95% interval, per language).", ""]
    n_failed = int(long["failed"].sum()) if len(long) else 0
    report += [f"{len(long)} judged turns, {n_failed} failed judgments (excluded from means, listed in "
               "judge_failures.csv)."]
    atomic_write_text(out_dir / "README.md", "\n".join(report) + "\n")
    atomic_write_text(out_dir / "missing.json", json.dumps(missing, indent=2) + "\n")
    return tables
