"""MT-Bench-X files: questions, GPT-4 reference answers and judge prompts of one language."""

from __future__ import annotations

from pathlib import Path

from mlit.files import read_jsonl

CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
# MT-Bench's sampling temperature per category (FastChat gen_model_answer).
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
               "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
# Categories judged against a reference answer (FastChat NEED_REF_CATS).
NEED_REFERENCE = ("math", "reasoning", "coding")


def load_questions(bench_dir: str | Path, lang: str, per_category: int | None = None) -> list[dict]:
    """Questions in file order; ``per_category`` keeps the first k of each category (smoke runs)."""
    path = Path(bench_dir) / lang / "question.jsonl"
    questions = read_jsonl(path)
    for index, question in enumerate(questions, start=1):
        turns = question.get("turns")
        if question.get("category") not in TEMPERATURE or not isinstance(turns, list) or len(turns) != 2:
            raise ValueError(f"{path}:{index}: expected a category from {list(TEMPERATURE)} and two turns")
    if per_category is None:
        return questions
    kept, seen = [], {}
    for question in questions:
        seen[question["category"]] = seen.get(question["category"], 0) + 1
        if seen[question["category"]] <= per_category:
            kept.append(question)
    return kept


def load_references(bench_dir: str | Path, lang: str) -> dict[str, dict]:
    return {row["question_id"]: row for row in read_jsonl(Path(bench_dir) / lang / "reference_answer_gpt-4.jsonl")}


def load_judge_prompts(bench_dir: str | Path, lang: str) -> dict[str, dict]:
    return {row["name"]: row for row in read_jsonl(Path(bench_dir) / lang / "judge_prompts.jsonl")}
