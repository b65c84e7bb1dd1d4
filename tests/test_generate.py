import pytest

from mlit.generate.answers import Generator, answer_questions
from mlit.files import read_jsonl, write_jsonl
from mlit.data.mtbench import TEMPERATURE, load_questions

from conftest import BENCH


class CountingGenerator(Generator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def generate(self, prompts, temperature, seed):
        self.calls.append((len(prompts), temperature))
        return super().generate(prompts, temperature, seed)


@pytest.fixture(scope="module")
def generator(tiny_base_model):
    return CountingGenerator(str(tiny_base_model), max_new_tokens=8, batch_size=4)


def test_answers_in_fastchat_format_with_mt_bench_temperatures(tmp_path, generator):
    questions = load_questions(BENCH, "FR", per_category=1)
    generator.calls.clear()
    rows = answer_questions(generator, questions, tmp_path / "FR.jsonl", "cell-x", seed=1)
    assert [r["question_id"] for r in rows] == [q["question_id"] for q in questions]
    for row in read_jsonl(tmp_path / "FR.jsonl"):
        assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert row["model_id"] == "cell-x" and row["choices"][0]["index"] == 0
        assert len(row["choices"][0]["turns"]) == 2 and all(isinstance(t, str) for t in row["choices"][0]["turns"])
    # one call per turn per temperature group, each at MT-Bench's temperature for its categories
    temps = sorted({TEMPERATURE[q["category"]] for q in questions})
    assert sorted({t for _, t in generator.calls}) == temps
    assert sum(n for n, _ in generator.calls) == 2 * len(questions)
    assert not (tmp_path / "FR.jsonl.partial").exists()


def test_greedy_answers_are_reproducible_and_batch_independent(tmp_path, tiny_base_model):
    questions = [q for q in load_questions(BENCH, "EN") if TEMPERATURE[q["category"]] == 0.0][:6]
    one = answer_questions(Generator(str(tiny_base_model), 8, batch_size=1), questions, tmp_path / "a.jsonl", "m", 1)
    six = answer_questions(Generator(str(tiny_base_model), 8, batch_size=6), questions, tmp_path / "b.jsonl", "m", 1)
    assert [r["choices"] for r in one] == [r["choices"] for r in six]


def test_a_killed_job_resumes_with_the_unanswered_questions(tmp_path, generator):
    questions = load_questions(BENCH, "IT", per_category=1)
    out = tmp_path / "IT.jsonl"
    done = [{"question_id": q["question_id"], "answer_id": f"old{i}", "model_id": "m",
             "choices": [{"index": 0, "turns": ["a", "b"]}], "tstamp": 0} for i, q in enumerate(questions[:3])]
    write_jsonl(out.with_name("IT.jsonl.partial"), done)
    with out.with_name("IT.jsonl.partial").open("a") as handle:
        handle.write('{"question_id": "torn')  # the job was killed mid-write
    generator.calls.clear()
    rows = answer_questions(generator, questions, out, "m", seed=1)
    assert sum(n for n, _ in generator.calls) == 2 * (len(questions) - 3)  # only the rest was generated
    assert rows[:3] == done and len(rows) == len(questions)
    assert read_jsonl(out) == rows


class RecordingGenerator(Generator):
    """Records every prompt and answers with a marker naming the call and the row."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompts = []

    def generate(self, prompts, temperature, seed):
        self.prompts.append(list(prompts))
        return [f"ANSWER-{len(self.prompts)}-{index}" for index in range(len(prompts))]


def test_turn_two_is_asked_after_the_whole_turn_one_conversation(tmp_path, tiny_base_model):
    recorder = RecordingGenerator(str(tiny_base_model), max_new_tokens=4, batch_size=3)
    questions = [q for q in load_questions(BENCH, "DE") if q["category"] == "writing"][:3]
    rows = answer_questions(recorder, questions, tmp_path / "DE.jsonl", "m", seed=1, lang="DE")
    assert len(recorder.prompts) == 2  # one batch: turn 1, then turn 2
    ordered = sorted(questions, key=lambda q: len(q["turns"][0]))  # the batch order (similar lengths)
    for index, (question, first, second) in enumerate(zip(ordered, *recorder.prompts)):
        q1, q2 = question["turns"]
        assert q1 in first and q2 not in first
        # turn 2 holds the question, the model's own turn-1 answer, then the second question, in order
        assert second.index(q1) < second.index(f"ANSWER-1-{index}") < second.index(q2)
    answered = {row["question_id"]: row["choices"][0]["turns"] for row in rows}
    assert all(turns[0].startswith("ANSWER-1-") and turns[1].startswith("ANSWER-2-") for turns in answered.values())
