"""Training data for the demo's tiny judge: real MT-Bench-X judge requests paired with replies in
the judge format (a short sentence, then ``<Rating>: [[n]]``).

A random tiny model never writes ``[[n]]``; fine-tuned on these examples it does, so the demo's
judge step runs the real path end to end. Its ratings mean nothing (7 when the answer ends
like a sentence, else 3); switch ``judge.base_url``/``judge.model`` to a real judge for real scores.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from mlit.files import read_jsonl, write_jsonl
from mlit.judge.prompts import build_requests
from mlit.data.mtbench import load_judge_prompts, load_questions, load_references

EXPLANATION = {
    "EN": "The response has been evaluated.",
    "DE": "Die Antwort wurde bewertet.",
    "FR": "La réponse a été évaluée.",
    "IT": "La risposta è stata valutata.",
    "ES": "La respuesta ha sido evaluada.",
}


def rating_phrase(prompts: dict[str, dict]) -> str:
    """The language's own example of the format, e.g. 'Bewertung: ' from '"Bewertung: [[5]]"'."""
    match = re.search(r'"([^"\[]*)\[\[5\]\]"', prompts["single-v1"]["prompt_template"])
    return match.group(1) if match else "Rating: "


def demo_rating(answer: str) -> int:
    """A rule a tiny model can learn from the tokens next to the answer's end: a finished sentence
    gets 7, anything else 3. Not a quality judgment."""
    return 7 if answer.rstrip().endswith((".", "!", "?")) else 3


def synthetic_answers(rng: random.Random, question: dict, pool: list[str], reference: dict | None) -> list[str]:
    words = " ".join(question["turns"]).split()
    candidates = [
        " ".join(rng.sample(pool, k=min(len(pool), rng.randint(1, 4)))) if pool else "",
        " ".join(rng.choices(words, k=rng.randint(3, 40))),
        reference["choices"][0]["turns"][0][: rng.randint(20, 400)] if reference else rng.choice(words),
        rng.choice(pool) if pool else "",
    ]
    return candidates


def build_judge_sft(bench_dir: str, languages: list[str], pool_files: dict[str, str], out: Path,
                    variants_per_question: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    rows = []
    for lang in languages:
        prompts = load_judge_prompts(bench_dir, lang)
        references = load_references(bench_dir, lang)
        phrase = rating_phrase(prompts)
        pool = [row["output"] for row in read_jsonl(pool_files[lang])] if lang in pool_files else []
        for question in load_questions(bench_dir, lang):
            reference = references.get(question["question_id"])
            for _ in range(variants_per_question):
                first, second = rng.sample(synthetic_answers(rng, question, pool, reference), k=2)
                answer = {"choices": [{"turns": [first, second]}]}
                for request, judged in zip(build_requests(question, answer, prompts, reference), (first, second)):
                    reply = f"{EXPLANATION[lang]} {phrase}[[{demo_rating(judged)}]]"
                    rows.append({"messages": [{"role": "system", "content": request.system_prompt},
                                              {"role": "user", "content": request.user_prompt},
                                              {"role": "assistant", "content": reply}]})
    rng.shuffle(rows)
    write_jsonl(out, rows)
    return len(rows)
