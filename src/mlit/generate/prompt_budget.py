"""What happens to a prompt longer than the model's context less the answer budget
(``generation.long_prompts``), and the record of it kept with the answer.

MT-Bench-X never cuts a prompt: it passes the whole prompt to ``generate`` with 1024 new tokens. A model
cannot attend past its context (``max_position_embeddings``), so mlit offers three behaviours:

- ``shrink`` (default, the closest to MT-Bench-X that still runs): the whole prompt, and the answer
  budget shrunk to what the context leaves (``context - prompt tokens``); a prompt that fills the
  whole context leaves no room for an answer: it is cut as under ``cut``, recorded as ``cut`` with
  ``"fallback": "shrink"`` (a turn 2 after a long turn 1 on a short-context model);
- ``cut``: keep the last ``context - max_new_tokens`` prompt tokens (the question being answered; the
  system message and turn 1 may be lost), full answer budget;
- ``refuse``: stop the job, naming the question, language and turn.

Every prompt that does not fit is recorded in its answer row (``long_prompts``, per turn) and counted
in the tables' ``generation_health`` table.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("shrink", "cut", "refuse")
DEFAULT_POLICY = "shrink"


class PromptBudgetError(RuntimeError):
    """A prompt that does not fit under the chosen behaviour; the message names the fix."""


@dataclass(frozen=True)
class Decision:
    """How one prompt is generated: ``keep`` its last prompt tokens (None: all) with ``max_new_tokens``;
    ``record`` is None when the prompt fits."""

    max_new_tokens: int
    keep: int | None = None
    record: dict | None = None


def decide(prompt_tokens: int, context: int | None, max_new_tokens: int, policy: str,
           where: str = "a prompt") -> Decision:
    """The decision for a prompt of ``prompt_tokens`` tokens in a context of ``context`` positions
    (None: unlimited) with an answer budget of ``max_new_tokens``. ``where`` names the prompt in errors."""
    if policy not in POLICIES:
        raise PromptBudgetError(f"generation.long_prompts: '{policy}' is not one of {', '.join(POLICIES)}")
    if not context or prompt_tokens + max_new_tokens <= context:
        return Decision(max_new_tokens)
    record = {"prompt_tokens": prompt_tokens, "context": context, "max_new_tokens": max_new_tokens,
              "action": policy}
    if policy == "refuse":
        raise PromptBudgetError(
            f"{where}: the prompt has {prompt_tokens} tokens, the context {context} less the answer budget "
            f"{max_new_tokens} leaves {context - max_new_tokens}; generation.long_prompts is refuse. Set it to "
            "shrink (the whole prompt, a shorter answer) or cut (the prompt's last tokens), or lower "
            "generation.max_new_tokens")
    budget = context - prompt_tokens
    if policy == "cut" or budget < 1:
        keep = max(context - max_new_tokens, 1)
        return Decision(max_new_tokens, keep, {**record, "action": "cut", "answer_budget": max_new_tokens,
                                                "cut_tokens": prompt_tokens - keep,
                                                **({"fallback": "shrink"} if policy == "shrink" else {})})
    return Decision(budget, None, {**record, "answer_budget": budget, "cut_tokens": 0})


def turn_records(*records_by_turn: dict | None) -> list[dict]:
    """An answer row's ``long_prompts``: the record of each turn whose prompt did not fit, with its turn."""
    return [{"turn": turn, **record} for turn, record in enumerate(records_by_turn, start=1) if record]


def last_records(generator, count: int) -> list[dict | None]:
    """The budget records of a generator's last call of ``count`` prompts (None per prompt where the
    generator keeps none, e.g. a stand-in)."""
    records = list(getattr(generator, "budget_records", None) or [])
    return records if len(records) == count else [None] * count
