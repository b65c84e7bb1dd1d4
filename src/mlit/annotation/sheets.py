"""The human annotation study: blind annotation sheets, their validated import, and the agreement of
human ratings with the judge's.

Export, per language: a sample of answered turns (question, answer; for turn 2 the whole
conversation), shuffled with a seed, without any model name, as CSV and JSONL for annotators, plus
a separate key file (item id -> cell, question, turn) that annotators never see. Import: filled
sheets (``item_id, annotator, rating`` with ratings 1-10) are checked row by row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from pathlib import Path

import polars as pl

from mlit.annotation.agreement import krippendorff_alpha, pairwise_agreement, rating_agreement
from mlit.files import atomic_write_text, read_jsonl, write_json, write_jsonl
from mlit.results.plotting import pyplot, save_figure
from mlit.data.mtbench import load_questions

SHEET_COLUMNS = ["item_id", "language", "question_1", "answer_1", "question_2", "answer_2", "turn_to_rate",
                 "annotator", "rating"]


PAIRWISE_COLUMNS = ["item_id", "language", "question_1", "answer_a_1", "answer_b_1", "question_2", "answer_a_2",
                    "answer_b_2", "turn_to_rate", "annotator", "verdict"]
VERDICTS = ("A", "B", "tie")


class SheetError(ValueError):
    """A filled annotation sheet with a bad row; the message names the file, row and field."""


def export_sheets(answer_files: dict[str, list[str]], bench_dir: str, out_dir: Path, per_language: int,
                  seed: int) -> dict[str, int]:
    """``answer_files``: language -> answer files (FastChat format). Writes ``sheet_<LANG>.csv``,
    ``sheet_<LANG>.jsonl`` and ``key_<LANG>.json``; returns items per language."""
    counts = {}
    for lang, files in answer_files.items():
        questions = {q["question_id"]: q for q in load_questions(bench_dir, lang)}
        candidates = []
        for path in files:
            for answer in read_jsonl(path):
                for turn in (1, 2):
                    candidates.append((answer["model_id"], answer["question_id"], turn,
                                       answer["choices"][0]["turns"]))
        rng = random.Random(f"{seed}:{lang}")
        rng.shuffle(candidates)
        chosen = candidates[:per_language]
        items, key = [], {}
        for model, question_id, turn, turns in chosen:
            item_id = hashlib.sha256(f"{seed}:{model}:{question_id}:{turn}".encode()).hexdigest()[:12]
            question = questions[question_id]
            items.append({"item_id": item_id, "language": lang, "question_1": question["turns"][0],
                          "answer_1": turns[0], "question_2": question["turns"][1] if turn == 2 else "",
                          "answer_2": turns[1] if turn == 2 else "", "turn_to_rate": turn, "annotator": "",
                          "rating": ""})
            key[item_id] = {"model": model, "question_id": question_id, "turn": turn}
        _write_sheet(out_dir, f"sheet_{lang}", SHEET_COLUMNS, items, key)
        counts[lang] = len(items)
    return counts


def _write_sheet(out_dir: Path, name: str, columns: list[str], items: list[dict], key: dict) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(items)
    atomic_write_text(out_dir / f"{name}.csv", buffer.getvalue())
    write_jsonl(out_dir / f"{name}.jsonl", items)
    write_json(out_dir / f"{name.replace('sheet', 'key')}.json", key)


def export_pairwise_sheets(answer_files: dict[str, list[str]], bench_dir: str, out_dir: Path, per_language: int,
                           seed: int) -> dict[str, int]:
    """Blind A/B sheets (``pairwise_sheet_<LANG>``): the same question and turn answered by two cells,
    in random order; the key records which cell is A and which is B."""
    counts = {}
    for lang, files in answer_files.items():
        questions = {q["question_id"]: q for q in load_questions(bench_dir, lang)}
        by_question: dict[str, list[tuple[str, list[str]]]] = {}
        for path in files:
            for answer in read_jsonl(path):
                by_question.setdefault(answer["question_id"], []).append((answer["model_id"],
                                                                           answer["choices"][0]["turns"]))
        rng = random.Random(f"pairwise:{seed}:{lang}")
        candidates = []
        for question_id, answered in sorted(by_question.items()):
            for i in range(len(answered)):
                for j in range(i + 1, len(answered)):
                    for turn in (1, 2):
                        candidates.append((question_id, answered[i], answered[j], turn))
        rng.shuffle(candidates)
        items, key = [], {}
        for question_id, first, second, turn in candidates[:per_language]:
            (model_a, turns_a), (model_b, turns_b) = (first, second) if rng.random() < 0.5 else (second, first)
            item_id = hashlib.sha256(f"{seed}:{model_a}:{model_b}:{question_id}:{turn}".encode()).hexdigest()[:12]
            question = questions[question_id]
            items.append({"item_id": item_id, "language": lang, "question_1": question["turns"][0],
                          "answer_a_1": turns_a[0], "answer_b_1": turns_b[0],
                          "question_2": question["turns"][1] if turn == 2 else "",
                          "answer_a_2": turns_a[1] if turn == 2 else "", "answer_b_2": turns_b[1] if turn == 2 else "",
                          "turn_to_rate": turn, "annotator": "", "verdict": ""})
            key[item_id] = {"model_a": model_a, "model_b": model_b, "question_id": question_id, "turn": turn}
        _write_sheet(out_dir, f"pairwise_sheet_{lang}", PAIRWISE_COLUMNS, items, key)
        counts[lang] = len(items)
    return counts


def _read_filled_sheet(path: str | Path, key: dict[str, dict], field: str, parse) -> list[dict]:
    """Rows of a filled sheet, each checked: a known item id, a named annotator, and a ``field`` that
    ``parse`` accepts (it returns the value, or None for a bad one). Errors name file, row and field."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"item_id", "annotator", field} - set(reader.fieldnames or [])
        if missing:
            raise SheetError(f"{path}: missing column(s) {sorted(missing)}; a filled sheet needs item_id, annotator, "
                             f"{field}")
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            item_id = row["item_id"].strip()
            if item_id not in key:
                raise SheetError(f"{path}:{number}: item_id '{item_id}' is not in the sheet's key file")
            text = (row[field] or "").strip()
            value = parse(text)
            if value is None:
                allowed = "a whole number from 1 to 10" if field == "rating" else f"one of {list(VERDICTS)}"
                raise SheetError(f"{path}:{number}: {field} '{text}' is not {allowed}")
            if not (row["annotator"] or "").strip():
                raise SheetError(f"{path}:{number}: annotator is empty; name who rated the item")
            rows.append({"item_id": item_id, "annotator": row["annotator"].strip(), field: value, **key[item_id]})
    return rows


def import_verdicts(path: str | Path, key: dict[str, dict]) -> pl.DataFrame:
    """Rows ``item_id, annotator, verdict, model_a, model_b, question_id, turn`` from a filled A/B sheet."""
    rows = _read_filled_sheet(path, key, "verdict", lambda text: text if text in VERDICTS else None)
    return pl.DataFrame(rows, schema={"item_id": pl.String, "annotator": pl.String, "verdict": pl.String,
                                      "model_a": pl.String, "model_b": pl.String, "question_id": pl.String,
                                      "turn": pl.Int64})


def judge_verdicts(verdicts: pl.DataFrame, judgments: pl.DataFrame) -> list[str | None]:
    """The judge's A/B verdict per human verdict, from its single-answer scores (higher wins, equal: tie)."""
    scores = {(m, q, t): s for m, q, t, s in judgments.select(["model", "question_id", "turn", "score"]).iter_rows()
              if s is not None}
    result = []
    for a, b, q, t in verdicts.select(["model_a", "model_b", "question_id", "turn"]).iter_rows():
        score_a, score_b = scores.get((a, q, t)), scores.get((b, q, t))
        result.append(None if score_a is None or score_b is None else
                      "A" if score_a > score_b else "B" if score_b > score_a else "tie")
    return result


def pairwise_judge_agreement(verdicts: pl.DataFrame, judgments: pl.DataFrame) -> dict:
    """MT-Bench's agreement rate between human and judge verdicts, with and without ties."""
    judged = judge_verdicts(verdicts, judgments)
    pairs = [(h, j) for h, j in zip(verdicts["verdict"], judged) if j is not None]
    human, judge = [h for h, _ in pairs], [j for _, j in pairs]

    def defined(value: float) -> float | None:
        return None if value != value else value  # NaN: no pair left to compare

    return {"n": len(pairs), "agreement_with_ties": defined(pairwise_agreement(human, judge)),
            "agreement_without_ties": defined(pairwise_agreement(human, judge, with_ties=False))}


def import_ratings(path: str | Path, key: dict[str, dict]) -> pl.DataFrame:
    """Rows ``item_id, annotator, rating, model, question_id, turn`` from a filled CSV sheet."""
    rows = _read_filled_sheet(path, key, "rating",
                              lambda text: int(text) if text.isdigit() and 1 <= int(text) <= 10 else None)
    return pl.DataFrame(rows, schema={"item_id": pl.String, "annotator": pl.String, "rating": pl.Int64,
                                      "model": pl.String, "question_id": pl.String, "turn": pl.Int64})


def human_judge_agreement(human: pl.DataFrame, judgments: pl.DataFrame) -> dict:
    """Agreement of the mean human rating per item (rounded) with the judge's score, and of the
    annotators with each other (Krippendorff's alpha, interval)."""
    per_item = human.group_by(["item_id", "model", "question_id", "turn"]).agg(pl.col("rating").mean())
    joined = per_item.join(judgments.select(["model", "question_id", "turn", "score"]).drop_nulls(),
                           on=["model", "question_id", "turn"])
    result = rating_agreement([int(round(r)) for r in joined["rating"]], [int(round(s)) for s in joined["score"]]) \
        if joined.height else {"n": 0}
    annotators = sorted(human["annotator"].unique().to_list())
    if len(annotators) > 1:
        matrix = human.pivot(on="annotator", index="item_id", values="rating").select(annotators)
        result["krippendorff_alpha_humans"] = krippendorff_alpha(matrix.to_numpy().T.astype(float))
    return {name: None if isinstance(value, float) and value != value else value for name, value in result.items()}


def plot_human_vs_judge(human: pl.DataFrame, judgments: pl.DataFrame, out_stem: Path, title: str) -> list[Path]:
    """Scatter of the mean human rating per item against the judge's score (jittered), PNG and SVG."""
    import numpy as np

    plt = pyplot()
    per_item = human.group_by(["item_id", "model", "question_id", "turn"]).agg(pl.col("rating").mean())
    joined = per_item.join(judgments.select(["model", "question_id", "turn", "score"]).drop_nulls(),
                           on=["model", "question_id", "turn"])
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=(2, joined.height))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(joined["score"].to_numpy() + jitter[0], joined["rating"].to_numpy() + jitter[1], s=14, alpha=0.6,
               gid="items")
    ax.plot([1, 10], [1, 10], color="grey", linewidth=0.8)
    ax.set_xlim(0.5, 10.5)
    ax.set_ylim(0.5, 10.5)
    ax.set_xlabel("judge score")
    ax.set_ylabel("human rating (mean over annotators)")
    ax.set_title(title)
    return save_figure(fig, out_stem)
