"""The judgment row has one owner (mlit.records): what the judge step writes is what the tables accept."""

from mlit.judge.step import judged_row
from mlit.judge.prompts import JudgeRequest
from mlit.records import FAILURE_KINDS, row_problem

REQUEST = JudgeRequest(question_id="81_DE", turn=1, category="writing", prompt_name="single-v1",
                       system_prompt="s", user_prompt="u")
ANSWER = {"model_id": "cell-1", "choices": [{"turns": ["Das ist eine gute und ausführliche Antwort auf Deutsch."]}]}


def reply(judgment, failure=None):
    return {"judgment": judgment, "error": "boom" if failure else None, "failure": failure,
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}, "cached": False}


def test_every_row_the_judge_writes_is_a_row_the_tables_accept():
    rows = [judged_row(ANSWER, REQUEST, [reply("Fine. Rating: [[7]]")], "DE", "gpt-4", "report"),
            judged_row(ANSWER, REQUEST, [reply("no rating here")], "DE", "gpt-4", "report"),
            judged_row(ANSWER, REQUEST, [reply(None, "api_error")], "DE", "gpt-4", "report"),
            judged_row(ANSWER, REQUEST, [reply("[[4]]"), reply("[[6]]"), reply(None, "api_error")], "DE", "gpt-4",
                       "report")]
    assert [row["failure"] for row in rows] == [None, "unparsable", "api_error", None]
    assert {row["failure"] for row in rows} - {None} == set(FAILURE_KINDS)
    for row in rows:
        assert row_problem(row, "DE", {"81_DE"}, "", "cell-1") is None, row
    # and what the tables refuse, the reader says
    assert row_problem({**rows[0], "score": 11}, "DE", None, "", "cell-1") == "score 11 is outside 1-10"
    assert "failure null" in row_problem({**rows[2], "failure": None}, "DE", None, "", "cell-1")
