"""The judgment row: one per (question, turn) of a judgment file ``results/judgments/<cell>/<LANG>.jsonl``,
written by the judge step (``mlit.judge.step.judged_row``) and read by the tables
(``mlit.results.tables.validate_judgments``) and by judgment import. Its failure kinds and what makes a
row valid live here, once, below both.
"""

from __future__ import annotations

import json

# The ``failure`` of a judgment row: null for a parsed score; otherwise one of these kinds, set where
# the failure happens and read by the tables (validate_judgments, judge_health, judge_failures) and
# import_judgments; the ``error`` text is for people and is never matched on.
#   "unparsable": the judge replied (at least one sample), but no reply holds a parsable [[1-10]] rating;
#                 the replies are cached, so a rerun does not change it.
#   "api_error":  no reply: every sample's request failed after its retries (online or Batch API);
#                 not cached, so a rerun retries it.
# An off-language answer rated 1 (judge.off_language: score_1) is a score, not a failure (null).
FAILURE_KINDS = ("unparsable", "api_error")
UNPARSABLE = "no parsable rating [[1-10]] in the judge's reply"

# What every row holds (the judge writes more: the prompt, the reply, usage, the answer's language).
REQUIRED_FIELDS = ("question_id", "model", "turn", "score", "lang", "category")


def row_problem(row, lang: str, expected: set[str] | None, expected_note: str, cell: str) -> str | None:
    """What is wrong with one judgment row of the file ``<cell>/<lang>.jsonl``, or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    absent = [field for field in REQUIRED_FIELDS if field not in row]
    if absent:
        return f"no {', '.join(absent)}"
    if row["model"] != cell:
        return f"model {json.dumps(row['model'])} differs from the file's cell {cell} (a judgment file " \
               "<cell>/<LANG>.jsonl holds the judgments of that cell's answers only)"
    if row["lang"] != lang:
        return f"lang {row['lang']!r} differs from the file's language {lang}"
    if not isinstance(row["question_id"], str):
        return f"question_id {json.dumps(row['question_id'])} is not a string"
    if expected is not None and row["question_id"] not in expected:
        return f"question_id {row['question_id']!r} is not one of the {len(expected)} expected {lang} questions" \
               f"{expected_note}"
    if isinstance(row["turn"], bool) or row["turn"] not in (1, 2):
        return f"turn {row['turn']!r} is not 1 or 2"
    score, failure = row["score"], row.get("failure")
    if failure is not None and failure not in FAILURE_KINDS:
        return f"failure {json.dumps(failure)} is not null or one of {', '.join(map(json.dumps, FAILURE_KINDS))}"
    if score is None:  # a recorded judge failure (mlit.judge.step: score null, its error and failure kind): counted
        if not (isinstance(row.get("error"), str) and row["error"]):
            return "score null without an error (not a recorded judge failure)"
        if "failure" not in row:
            return "score null without a failure kind (a judgment file written before rows recorded one): " \
                   "re-run the judge step for this file (successful calls are cached)"
        if failure is None:
            return "score null with failure null (not a recorded judge failure)"
        return None
    if failure is not None:
        return f"score {json.dumps(score)} with failure {json.dumps(failure)}: a failed judgment has score null"
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        kind = {bool: "boolean", str: "string", list: "array", dict: "object"}.get(type(score), type(score).__name__)
        return f"score {json.dumps(score)} is a JSON {kind}, not a number"
    if not 1 <= score <= 10:
        return f"score {json.dumps(score)} is outside 1-10"
    return None
