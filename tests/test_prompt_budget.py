"""A prompt longer than the model's context less the answer budget is never cut silently: it is
answered under ``generation.long_prompts`` (shrink by default, as close to MT-Bench-X as a model allows:
it never cuts), recorded in the answer row and shown in the tables' generation_health report."""

import json

import polars as pl
import pytest

from mlit.files import read_jsonl
from mlit.generate.answers import Generator, answer_questions, sampling_top_k, vllm_dtype
from mlit.generate.prompt_budget import PromptBudgetError, decide

from conftest import BENCH, LANGS

CONTEXT = 128
ANSWER = 48


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory):
    """The demo's tiny model built with a context of 128 positions."""
    from mlit.model.tiny import build_base_model

    out = tmp_path_factory.mktemp("short") / "tiny"
    corpus = [str(BENCH / lang / "question.jsonl") for lang in LANGS]
    build_base_model({"vocab_size": 800, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                      "max_position_embeddings": CONTEXT}, corpus, out)
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == CONTEXT
    return out


def question_of_length(generator, tokens: int, qid: str) -> dict:
    """A writing question (sampled) whose turn-1 prompt has exactly ``tokens`` tokens or a few more."""
    words = []
    while True:
        text = " ".join(words) or "Hallo"
        prompt = generator.render([{"role": "user", "content": text}])
        if len(generator.tokenizer(prompt, add_special_tokens=False)["input_ids"]) >= tokens:
            return {"question_id": qid, "category": "writing", "turns": [text, "Und weiter?"]}
        words.append("Gespräch")


def test_decisions():
    assert decide(80, CONTEXT, ANSWER, "shrink").record is None  # fits exactly
    shrunk = decide(100, CONTEXT, ANSWER, "shrink")
    assert (shrunk.max_new_tokens, shrunk.keep, shrunk.record["answer_budget"]) == (28, None, 28)
    cut = decide(100, CONTEXT, ANSWER, "cut")
    assert (cut.max_new_tokens, cut.keep, cut.record["cut_tokens"]) == (ANSWER, 80, 20)
    with pytest.raises(PromptBudgetError, match=r"question 7_DE, turn 2: .* 100 tokens.*long_prompts is refuse"):
        decide(100, CONTEXT, ANSWER, "refuse", "question 7_DE, turn 2")
    full = decide(128, CONTEXT, ANSWER, "shrink")  # no answer fits: cut, recorded as a fallback
    assert (full.keep, full.record["action"], full.record["fallback"], full.record["cut_tokens"]) == \
        (80, "cut", "shrink", 48)
    assert decide(10**6, None, ANSWER, "refuse").record is None  # no known context: nothing to check


def test_a_prompt_over_the_budget_is_answered_whole_recorded_and_reported(short_context_model, tmp_path):
    from mlit.results.tables import write_tables

    generator = Generator(str(short_context_model), max_new_tokens=ANSWER, batch_size=4)
    assert generator.max_positions == CONTEXT and generator.long_prompts == "shrink"
    long_question = question_of_length(generator, 100, "901_DE")
    short_question = question_of_length(generator, 20, "902_DE")
    seen = []
    original = generator.model.generate
    generator.model.generate = lambda **kwargs: seen.append(
        (kwargs["input_ids"].shape, kwargs["max_new_tokens"])) or original(**kwargs)
    out = tmp_path / "answers" / "m__d__DE__full__seed1" / "DE.jsonl"
    rows = answer_questions(generator, [long_question, short_question], out, "m", seed=1, lang="DE")
    long_row, short_row = rows if rows[0]["question_id"] == "901_DE" else rows[::-1]
    turn1 = long_row["long_prompts"][0]
    assert turn1["turn"] == 1 and turn1["action"] == "shrink" and turn1["context"] == CONTEXT
    assert turn1["prompt_tokens"] >= 100 and turn1["answer_budget"] == CONTEXT - turn1["prompt_tokens"]
    assert turn1["cut_tokens"] == 0
    # the whole prompt went to the model, with the shrunk budget; the short one as usual
    assert (turn1["prompt_tokens"], turn1["answer_budget"]) in [(shape[1], budget) for shape, budget in seen]
    assert all(event["turn"] == 2 for event in short_row["long_prompts"])  # its turn 1 fit
    # turn 2 (turn 1, its answer and a question) fills the context: cut, and recorded as such
    turn2 = long_row["long_prompts"][1]
    assert turn2["turn"] == 2 and turn2["action"] == "cut" and turn2["fallback"] == "shrink"
    assert turn2["prompt_tokens"] >= CONTEXT and turn2["cut_tokens"] == turn2["prompt_tokens"] - (CONTEXT - ANSWER)
    assert read_jsonl(out) == rows

    # the tables' health report shows it (judgments of the two questions, as the judge writes them)
    cell = "m__d__DE__full__seed1"
    judgments = tmp_path / "judgments" / cell / "DE.jsonl"
    judgments.parent.mkdir(parents=True)
    judgments.write_text("".join(json.dumps({
        "question_id": qid, "model": cell, "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
        "judgment": "Rating: [[5]]", "score": 5, "turn": turn, "category": "writing", "lang": "DE",
        "prompt_name": "single-v1", "error": None, "failure": None}) + "\n" for qid in ("901_DE", "902_DE")
        for turn in (1, 2)))
    tables = write_tables([str(judgments)], {cell: {"cell": cell, "base_model": "m", "dataset": "d",
                                                    "composition": "DE", "size": "full", "seed": 1}},
                          tmp_path / "tables", answer_files=[str(out)])
    health = pl.read_csv(tmp_path / "tables" / "generation_health.csv")
    row = health.row(0, named=True)
    assert (row["cell"], row["lang"], row["questions"]) == ("m__d__DE__full__seed1", "DE", 2)
    assert row["prompts_over_budget"] == len(long_row["long_prompts"]) + len(short_row["long_prompts"]) >= 1
    events = long_row["long_prompts"] + short_row["long_prompts"]
    assert row["shrunk"] == sum(e["action"] == "shrink" for e in events) >= 1
    assert row["cut"] == sum(e["action"] == "cut" for e in events) >= 1
    assert row["most_tokens_cut"] == max(e["cut_tokens"] for e in events)
    assert "901_DE (turn 1, shrink)" in row["questions_affected"]
    assert tables["generation_health"].height == 1
    assert "901_DE (turn 1, shrink)" in (tmp_path / "tables" / "README.md").read_text()


def test_cut_and_refuse(short_context_model, tmp_path):
    generator = Generator(str(short_context_model), max_new_tokens=ANSWER, batch_size=4, long_prompts="cut")
    question = question_of_length(generator, 100, "903_FR")
    row = answer_questions(generator, [question], tmp_path / "FR.jsonl", "m", seed=1, lang="FR")[0]
    event = row["long_prompts"][0]
    assert event["action"] == "cut" and event["cut_tokens"] == event["prompt_tokens"] - (CONTEXT - ANSWER)
    generator.long_prompts = "refuse"
    with pytest.raises(PromptBudgetError, match=r"question 903_FR, turn 1: the prompt has \d+ tokens"):
        answer_questions(generator, [question], tmp_path / "refused" / "FR.jsonl", "m", seed=1, lang="FR")


def test_sampling_settings_follow_mt_bench_x():
    assert sampling_top_k(0.7, 50) == 50 and sampling_top_k(0.1, 50) == 50
    assert sampling_top_k(0.0, 50) == -1 and sampling_top_k(0.7, None) == -1
    from mlit.generate.answers import generation_settings

    assert vllm_dtype(generation_settings({"dtype": "float16"}), visible_gpus=1) == "float16"
    assert vllm_dtype(generation_settings({"dtype": "float16"}), visible_gpus=0) == "auto"  # the CPU keeps the checkpoint's dtype
    assert vllm_dtype(generation_settings({"dtype": "float16", "vllm_dtype": "bfloat16"}), visible_gpus=1) == "bfloat16"
