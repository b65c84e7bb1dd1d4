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

from mlit.agreement import krippendorff_alpha, rating_agreement
from mlit.io import atomic_write_text, read_jsonl, write_json, write_jsonl
from mlit.mtbench import load_questions

SHEET_COLUMNS = ["item_id", "language", "question_1", "answer_1", "question_2", "answer_2", "turn_to_rate",
                 "annotator", "rating"]


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
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        writer.writerows(items)
        atomic_write_text(out_dir / f"sheet_{lang}.csv", buffer.getvalue())
        write_jsonl(out_dir / f"sheet_{lang}.jsonl", items)
        write_json(out_dir / f"key_{lang}.json", key)
        counts[lang] = len(items)
    return counts


def import_ratings(path: str | Path, key: dict[str, dict]) -> pl.DataFrame:
    """Rows ``item_id, annotator, rating, model, question_id, turn`` from a filled CSV sheet."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"item_id", "annotator", "rating"} - set(reader.fieldnames or [])
        if missing:
            raise SheetError(f"{path}: missing column(s) {sorted(missing)}; a filled sheet needs item_id, annotator, "
                             "rating")
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            item_id = row["item_id"].strip()
            if item_id not in key:
                raise SheetError(f"{path}:{number}: item_id '{item_id}' is not in the sheet's key file")
            text = (row["rating"] or "").strip()
            if not text.isdigit() or not 1 <= int(text) <= 10:
                raise SheetError(f"{path}:{number}: rating '{text}' is not a whole number from 1 to 10")
            if not (row["annotator"] or "").strip():
                raise SheetError(f"{path}:{number}: annotator is empty; name who rated the item")
            rows.append({"item_id": item_id, "annotator": row["annotator"].strip(), "rating": int(text), **key[item_id]})
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
