"""MT-Bench-X single-answer grading requests, built exactly as FastChat's llm_judge builds them,
and the rating parser of MT-Bench.

Turn 1 uses ``single-v1`` (``single-math-v1`` with the GPT-4 reference answer for math, reasoning
and coding); turn 2 uses the ``-multi-turn`` prompt over the whole conversation. Prompts are those
of the answer's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlit.data.mtbench import NEED_REFERENCE

# MT-Bench's patterns, with ASCII digits only ('\d' also matches '٧' or '７', which no number parser
# here reads as the judge meant); the match is read by ``read_number``, never evaluated as Python.
ONE_SCORE = re.compile(r"\[\[([0-9]+\.?[0-9]*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[([0-9]+\.?[0-9]*)\]")
# What ast.literal_eval (FastChat's reader) accepts of those matches: an integer without a leading zero
# ('0' itself, or only zeros, as Python allows), or a decimal number ('08.5', '7.'). '08' is no number
# literal: it is no rating (unparsable), as it never was one for FastChat.
NUMBER = re.compile(r"(?:[1-9][0-9]*|0+)|[0-9]+\.[0-9]*")


@dataclass(frozen=True)
class JudgeRequest:
    question_id: str
    turn: int
    category: str
    prompt_name: str
    system_prompt: str
    user_prompt: str


def prompt_name(category: str, turn: int) -> str:
    base = "single-math-v1" if category in NEED_REFERENCE else "single-v1"
    return base if turn == 1 else f"{base}-multi-turn"


def build_requests(question: dict, answer: dict, prompts: dict[str, dict], reference: dict | None) -> list[JudgeRequest]:
    """The two judge requests (turn 1, turn 2) for one answered question."""
    answer_turns = answer["choices"][0]["turns"]
    requests = []
    for turn in (1, 2):
        name = prompt_name(question["category"], turn)
        template = prompts[name]
        kwargs = {}
        if question["category"] in NEED_REFERENCE:
            if reference is None:
                raise ValueError(f"question {question['question_id']} ({question['category']}) has no reference answer")
            kwargs["ref_answer_1"] = reference["choices"][0]["turns"][0]
            if turn == 2:
                kwargs["ref_answer_2"] = reference["choices"][0]["turns"][1]
        if turn == 2:
            user_prompt = template["prompt_template"].format(
                question_1=question["turns"][0], question_2=question["turns"][1],
                answer_1=answer_turns[0], answer_2=answer_turns[1], **kwargs)
        else:
            user_prompt = template["prompt_template"].format(
                question=question["turns"][0], answer=answer_turns[0], **kwargs)
        requests.append(JudgeRequest(question_id=question["question_id"], turn=turn, category=question["category"],
                                     prompt_name=name, system_prompt=template["system_prompt"],
                                     user_prompt=user_prompt))
    return requests


def parse_rating(judgment: str) -> float | None:
    """MT-Bench's parse: ``[[n]]``, else ``[n]``; None when there is no rating, the rating is no number
    literal (``[[08]]``) or it is outside 1..10. Never raises, whatever the reply: a reply without a
    rating is a recorded ``unparsable`` judgment (``mlit.judge.step``), and its cached text parses the
    same on every rerun."""
    if not isinstance(judgment, str):
        return None
    match = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    if not match or not NUMBER.fullmatch(match.group(1)):
        return None
    rating = float(match.group(1))
    return rating if 1 <= rating <= 10 else None
