import pytest

from mlit.generate.answers import Generator, answer_questions
from mlit.files import read_jsonl, write_jsonl
from mlit.data.mtbench import TEMPERATURE, load_questions

from conftest import BENCH, demo_config


class CountingGenerator(Generator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def generate(self, prompts, temperature, seed, names=None):
        self.calls.append((len(prompts), temperature))
        return super().generate(prompts, temperature, seed, names=names)


@pytest.fixture(scope="module")
def generator(tiny_base_model):
    return CountingGenerator(str(tiny_base_model), max_new_tokens=8, batch_size=4)


def test_answers_in_fastchat_format_with_mt_bench_temperatures(tmp_path, generator):
    questions = load_questions(BENCH, "FR", per_category=1)
    generator.calls.clear()
    rows = answer_questions(generator, questions, tmp_path / "FR.jsonl", "cell-x", seed=1)
    assert [r["question_id"] for r in rows] == [q["question_id"] for q in questions]
    for row in read_jsonl(tmp_path / "FR.jsonl"):
        assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp", "long_prompts"}
        assert row["long_prompts"] == []  # every prompt fit
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

    def generate(self, prompts, temperature, seed, names=None):
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


# --- settings: engine arguments, device map, per-base-model generation settings -------------------

def test_vllm_engine_arguments_come_from_the_settings_and_the_jobs_gpus():
    from mlit.generate.answers import generation_settings, vllm_engine_args

    settings = generation_settings({"gpus": 4, "vllm_dtype": "bfloat16", "seed": 7, "vllm_enforce_eager": True,
                                    "vllm_gpu_memory_utilization": 0.6, "batch_size": 3})
    assert vllm_engine_args("/m", settings, 4096, True, visible_gpus=4) == {
        "model": "/m", "tensor_parallel_size": 4, "dtype": "bfloat16", "seed": 7, "max_model_len": 4096,
        "enforce_eager": True, "gpu_memory_utilization": 0.6, "trust_remote_code": True}
    # the schema's defaults (its one place); never more shards than GPUs the job sees; vLLM's CPU engine: 1
    assert vllm_engine_args("/m", generation_settings({}), None, False, visible_gpus=1) == {
        "model": "/m", "tensor_parallel_size": 1, "dtype": "auto", "seed": 42, "max_model_len": None,
        "enforce_eager": False, "gpu_memory_utilization": 0.85, "trust_remote_code": False}
    assert vllm_engine_args("/m", generation_settings({"gpus": 8}), None, False, visible_gpus=2)[
        "tensor_parallel_size"] == 2
    assert vllm_engine_args("/m", generation_settings({"gpus": 2}), None, False, visible_gpus=0)[
        "tensor_parallel_size"] == 1
    assert vllm_engine_args("/m", generation_settings({"gpus": 0}), None, False, visible_gpus=2)["tensor_parallel_size"] == 1


def test_the_hf_model_is_spread_over_gpus_only_when_there_are_several_or_asked():
    from mlit.generate.answers import hf_device_map

    assert hf_device_map(None, 0) is None and hf_device_map(None, 1) is None
    assert hf_device_map(None, 2) == "auto" and hf_device_map("auto", 1) == "auto"


def test_the_hf_backend_never_compiles_unless_configured(tiny_base_model):
    from mlit.generate.answers import make_generator

    calls = []
    generator = make_generator(str(tiny_base_model), {"max_new_tokens": 2, "batch_size": 2})
    assert generator.compile is False and generator.cache_implementation == "static" and generator.device_map is None
    original = generator.model.generate
    generator.model.generate = lambda **kwargs: calls.append(kwargs) or original(**kwargs)
    generator.generate(["hello"], 0.0, 1)
    assert calls[0]["disable_compile"] is True and calls[0]["cache_implementation"] == "static"
    assert make_generator(str(tiny_base_model), {"max_new_tokens": 2, "hf_compile": True}).compile is True




def test_a_base_models_generation_settings_are_merged_over_the_global_ones():
    from mlit.config import Grid, experiment_part

    from conftest import REPO

    config = demo_config()
    config["generation"].update(backend="vllm")
    config["launch"]["generation"] = {"vllm_gpu_memory_utilization": 0.85}
    other = {**config["base_models"][0], "name": "big",
             "generation": {"max_new_tokens": 7, "system_message": "english"},
             "launch": {"generation": {"vllm_gpu_memory_utilization": 0.5, "vllm_batch_size": 3},
                        "resources": {"generate": {"gpus": 4}}}}
    config["base_models"].append(other)
    grid = Grid(config, repo_root=REPO)
    tiny, big = grid.generation_settings("tiny-llama"), grid.generation_settings("big")
    assert big["max_new_tokens"] == 7 and big["system_message"] == "english"
    assert tiny["max_new_tokens"] == config["generation"]["max_new_tokens"]
    # the params hold the sampling settings, not how the job runs
    assert not {"gpus", "vllm_gpu_memory_utilization", "vllm_batch_size"} & set(big)
    # the launch reaches the job through its cell's section of the execution file
    execution = grid.execution_settings()["generation"]
    big_cells = [cell for cell in grid.cells if cell.startswith("big__")]
    assert big_cells and all(execution[cell]["vllm_gpu_memory_utilization"] == 0.5 and execution[cell]["gpus"] == 4
                             and execution[cell]["vllm_batch_size"] == 3 for cell in big_cells)
    assert all(execution[cell]["gpus"] == 1 and execution[cell]["vllm_gpu_memory_utilization"] == 0.85
               for cell in grid.cells if cell.startswith("tiny-llama__"))
    # a job's merged settings: the fingerprint of its partial answers keeps only the experiment keys
    job = {**big, **execution[big_cells[0]]}
    changed = {**job, "vllm_gpu_memory_utilization": 0.3, "gpus": 8, "vllm_enforce_eager": True, "hf_compile": True,
               "vllm_batch_size": 64, "vllm_submission": "batch"}
    assert experiment_part("generation", changed) == experiment_part("generation", job) == big


def test_the_schema_takes_per_model_generation_settings_without_filling_in_defaults():
    from mlit.config import ConfigError, Grid

    from conftest import REPO

    config = demo_config()
    config["base_models"][0]["generation"] = {"max_new_tokens": 5}
    grid = Grid(config, repo_root=REPO)  # validates and fills in the schema's defaults
    assert config["base_models"][0]["generation"] == {"max_new_tokens": 5}  # unset keys stay the global ones
    assert config["launch"]["generation"]["hf_compile"] is False
    assert config["launch"]["generation"]["vllm_submission"] == "turn"
    assert grid.generation_settings("tiny-llama")["max_new_tokens"] == 5
    config = demo_config()
    config["base_models"][0]["generation"] = {"benchmark_dir": "elsewhere"}  # the benchmark is the grid's
    with pytest.raises(ConfigError, match="benchmark_dir"):
        Grid(config, repo_root=REPO)


# --- whole-turn submission (vLLM's path), on a stand-in engine -------------------------------------

class TurnGenerator(Generator):
    """``generate_requests`` as VLLMGenerator has it, answered by the hf model one prompt at a time
    (greedy answers do not depend on the batch), counting engine calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = []

    def generate_requests(self, requests, names=None):
        self.requests.append(list(requests))
        return [Generator.generate(self, [prompt], temperature, seed)[0] for prompt, temperature, seed in requests]


def greedy_questions(lang, count):
    return [q for q in load_questions(BENCH, lang) if TEMPERATURE[q["category"]] == 0.0][:count]


def test_whole_turn_submission_makes_two_engine_calls_per_cell_with_the_batch_loops_answers(tmp_path,
                                                                                          tiny_base_model):
    from mlit.generate.answers import answer_whole_turns

    turns = TurnGenerator(str(tiny_base_model), 8, batch_size=2)
    tasks = [(lang, greedy_questions(lang, 5), tmp_path / "turn" / f"{lang}.jsonl") for lang in ("EN", "DE")]
    results = answer_whole_turns(turns, tasks, "m", seed=1)
    assert [len(call) for call in turns.requests] == [10, 10]  # turn 1 of every question and language, turn 2
    batched = Generator(str(tiny_base_model), 8, batch_size=2)
    for lang, questions, out in tasks:
        loop = answer_questions(batched, questions, tmp_path / "loop" / f"{lang}.jsonl", "m", 1, lang=lang)
        assert [r["choices"] for r in results[lang]] == [r["choices"] for r in loop]
        assert read_jsonl(out) == results[lang] and not out.with_name(f"{lang}.jsonl.turn1.partial").exists()
    # per-request temperatures: every request carries its question's MT-Bench temperature
    writing = [q for q in load_questions(BENCH, "FR") if q["category"] in ("writing", "stem")][:4]
    recorder = TurnGenerator(str(tiny_base_model), 2, batch_size=2)
    answer_whole_turns(recorder, [("FR", writing, tmp_path / "FR.jsonl")], "m", seed=1)
    assert [t for _, t, _ in recorder.requests[0]] == [TEMPERATURE[q["category"]] for q in writing]
    assert len({s for _, _, s in recorder.requests[0]}) == 4  # a seed per question


class MarkerTurns(TurnGenerator):
    def generate_requests(self, requests, names=None):
        self.requests.append(list(requests))
        return [f"ANSWER-{len(self.requests)}-{index}" for index in range(len(requests))]


def test_whole_turn_submission_resumes_with_what_a_killed_job_left(tmp_path, tiny_base_model):
    from mlit.generate.answers import answer_whole_turns

    questions = greedy_questions("IT", 6)
    out = tmp_path / "IT.jsonl"
    done = [{"question_id": q["question_id"], "answer_id": f"old{i}", "model_id": "m",
             "choices": [{"index": 0, "turns": ["a", "b"]}], "tstamp": 0} for i, q in enumerate(questions[:2])]
    write_jsonl(out.with_name("IT.jsonl.partial"), done)
    # killed during turn 2: turn 1 of questions 3 and 4 was kept
    write_jsonl(out.with_name("IT.jsonl.turn1.partial"),
                [{"question_id": q["question_id"], "answer": f"kept-{q['question_id']}"} for q in questions[2:4]])
    with out.with_name("IT.jsonl.turn1.partial").open("a") as handle:
        handle.write('{"question_id": "torn')
    log = []
    generator = MarkerTurns(str(tiny_base_model), 2, batch_size=2)
    rows = answer_whole_turns(generator, [("IT", questions, out)], "m", seed=1, log=log.append)["IT"]
    assert f"resuming {out}: 2 of 6 questions already answered, 2 turn-1 answers kept" in log
    assert [len(call) for call in generator.requests] == [2, 4]  # turn 1 of the last two; turn 2 of four
    assert rows[:2] == done and [r["question_id"] for r in rows] == [q["question_id"] for q in questions]
    assert [r["choices"][0]["turns"][0] for r in rows[2:4]] == [f"kept-{q['question_id']}" for q in questions[2:4]]
    assert any(f"kept-{questions[2]['question_id']}" in prompt for prompt, _, _ in generator.requests[1])
    assert read_jsonl(out) == rows and not out.with_name("IT.jsonl.partial").exists()


def _generate_command(model, out_dir, max_new_tokens):
    import json
    import sys

    settings = {"backend": "hf", "max_new_tokens": max_new_tokens, "batch_size": 1, "questions_per_category": 2,
                "seed": 42}
    return [sys.executable, "-m", "mlit", "generate", "--model", str(model), "--bench", str(BENCH), "--langs", "EN",
            "--model-id", "cell-x", "--settings", json.dumps(settings), "--out-dir", str(out_dir)]


def test_partial_answers_of_other_generation_settings_are_discarded_not_resumed(tmp_path, tiny_base_model):
    """A generate job killed under max_new_tokens 200 leaves EN.jsonl.partial; the rerun under
    max_new_tokens 4 discards it (a log line) and answers every question again: no answer of the killed
    job is in its file (main resumed them: a file mixing two settings)."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "killed"
    partial = out / "EN.jsonl.partial"
    job = subprocess.Popen(_generate_command(tiny_base_model, out, 200), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        if partial.exists() and partial.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not (out / "EN.jsonl").exists(), "the job finished before it was killed"
    kept = read_jsonl(partial, tolerate_torn_tail=True)
    assert len(kept) >= 2

    rerun = subprocess.run(_generate_command(tiny_base_model, out, 4), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = read_jsonl(out / "EN.jsonl")
    assert len(rows) == 16
    mixed = {row["answer_id"] for row in kept} & {row["answer_id"] for row in rows}
    assert not mixed, f"{len(mixed)} of {len(rows)} answers are the killed job's (max_new_tokens 200)"
    assert "discarding EN.jsonl.partial" in rerun.stdout + rerun.stderr
    assert not partial.exists() and not (out / "EN.jsonl.partial.fingerprint").exists()


def test_partial_answers_of_the_same_settings_are_resumed(tmp_path, tiny_base_model):
    from mlit.data.mtbench import load_questions
    from mlit.generate.partials import answers_fingerprint, keep_matching_partials

    settings = {"backend": "hf", "max_new_tokens": 4, "batch_size": 1, "vllm_python": "/a"}
    questions = load_questions(BENCH, "EN", per_category=1)
    out = tmp_path / "EN.jsonl"
    fingerprint = answers_fingerprint(tiny_base_model, settings, "EN", questions, "m")
    # an execution setting (the vLLM interpreter) does not change what the answers are
    assert answers_fingerprint(tiny_base_model, {**settings, "vllm_python": "/b"}, "EN", questions, "m") == fingerprint
    assert answers_fingerprint(tiny_base_model, {**settings, "max_new_tokens": 5}, "EN", questions, "m") != fingerprint
    assert answers_fingerprint(tiny_base_model, settings, "EN", questions[1:], "m") != fingerprint
    keep_matching_partials(out, fingerprint, log=print)
    out.with_name("EN.jsonl.partial").write_text('{"question_id": 81}\n')
    log = []
    keep_matching_partials(out, fingerprint, log=log.append)
    assert out.with_name("EN.jsonl.partial").exists() and not log
    keep_matching_partials(out, "other", log=log.append)
    assert not out.with_name("EN.jsonl.partial").exists() and "discarding EN.jsonl.partial" in log[0]


def test_an_answer_stops_at_its_end_of_turn_token_id_and_is_cut_at_its_end_of_turn_text(tiny_base_model):
    """Sampled with a fixed seed (the same tokens each time), an answer ends right before the chat format's
    end-of-turn token id, and an end of turn given as text (several tokens) stops it and is cut off with
    whatever follows it."""
    import torch

    from mlit.generate.answers import ChatStop, eos_ids
    from mlit.model.base import read_base_info

    generator = Generator(str(tiny_base_model), max_new_tokens=16, batch_size=1)
    prompt = generator.render([{"role": "user", "content": "Was ist die Hauptstadt von Deutschland?"}])
    encoded = generator.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(3)
    free = generator.model.generate(**encoded, max_new_tokens=16, do_sample=True, temperature=1.0, top_p=1.0,
                                    eos_token_id=None, pad_token_id=generator.tokenizer.pad_token_id)
    tokens = free[0, encoded["input_ids"].shape[1]:].tolist()
    eos = eos_ids(generator.model.generation_config.eos_token_id)
    decode = generator.tokenizer.decode
    k = next(i for i in range(3, len(tokens)) if tokens[i] not in tokens[:i] and tokens[i] not in eos
             and decode([tokens[i]]).strip() and decode([tokens[i]]) not in decode(tokens[:i]))
    info = read_base_info(tiny_base_model)

    # an end-of-turn token id (as </s>, whose text the decoding skips): generation must stop at it, as no text
    # cut can find it (here its text is left in the answer, to see where generation stopped)
    generator.stop = ChatStop({**info, "chat_format": {**info["chat_format"], "end_of_turn": None},
                               "end_of_turn_token_id": tokens[k]}, eos)
    before = generator.generated_tokens
    assert generator.generate([prompt], 1.0, 3) == [decode(tokens[:k + 1], skip_special_tokens=True).strip()]
    assert generator.generated_tokens - before == k + 1  # stopped at the end-of-turn token

    text = decode(tokens, skip_special_tokens=True)
    marker = next(word for word in text.split()[1:] if len(word) > 1 and text.index(word) > 0)
    generator.stop = ChatStop({**info, "chat_format": {**info["chat_format"], "end_of_turn": marker},
                               "end_of_turn_token_id": None}, eos)
    assert generator.stop.stop_strings == [marker]
    assert generator.generate([prompt], 1.0, 3) == [text[:text.index(marker)].strip()]
