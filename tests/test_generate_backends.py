"""The `hf` and `vllm` generation backends on a tiny model that has memorised its training answers
(so greedy decoding is unambiguous): same answers, resume after a kill, FastChat's answer format.
vLLM runs from its own environment (.venv-vllm, made by `make setup-vllm`)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mlit.files import read_jsonl, write_jsonl

from conftest import REPO, demo_config

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CATEGORIES = ["math", "reasoning", "coding", "extraction"]  # MT-Bench temperature 0: greedy
FACTS = [(f"What is the code word for item {i}?", f"The code word for item {i} is {word}.")
         for i, word in enumerate(["apple", "river", "stone", "cloud", "tiger", "maple", "ocean", "ember",
                                   "frost", "amber", "cedar", "delta", "falcon", "harbor", "island", "jungle"])]

@pytest.fixture(scope="module")
def memorised(tmp_path_factory, tiny_base_model):
    """A tiny model trained on 16 question/answer pairs until it answers them verbatim, and a
    benchmark directory whose questions are those pairs."""
    from mlit.train.sft import train

    work = tmp_path_factory.mktemp("memorised")
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    write_jsonl(work / "train.jsonl", rows)
    train(str(tiny_base_model), str(work / "train.jsonl"), work / "model",
          {"learning_rate": 3e-3, "num_train_epochs": 150, "per_device_train_batch_size": 16, "effective_batch_size": 16, "max_length": 128,
           "logging_steps": 50, "save_steps": 10**6, "lr_scheduler_type": "constant"}, seed=0)
    bench = work / "bench"
    questions = [{"question_id": f"{i + 1}_EN", "category": CATEGORIES[i % 4], "turns": [q, FACTS[(i + 1) % 16][0]]}
                 for i, (q, _) in enumerate(FACTS)]
    write_jsonl(bench / "EN" / "question.jsonl", questions)
    # the same questions as a second language of the cell (whole-turn submission spans languages)
    write_jsonl(bench / "DE" / "question.jsonl", [{**q, "question_id": q["question_id"].replace("_EN", "_DE")}
                                                  for q in questions])
    return work / "model", bench


def generate(python, model, bench, out_dir, backend, batch_size=8, langs=("EN",), extra=None,
             **popen):
    # batch_size: prompts per call of the hf backend (an experiment key) and of vLLM's batch loop (a launch key)
    settings = {"backend": backend, "max_new_tokens": 24, "batch_size": batch_size, "vllm_batch_size": batch_size,
                "seed": 1,
                "vllm_dtype": "float32", "vllm_enforce_eager": True,
                # on the CPU the share of the machine's memory vLLM reserves: others' jobs use memory too
                "vllm_gpu_memory_utilization": 0.2, **(extra or {})}
    command = [str(python), "-m", "mlit", "generate", "--model", str(model), "--bench", str(bench), "--langs", *langs,
               "--model-id", "memorised", "--settings", json.dumps(settings), "--out-dir", str(out_dir)]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "OMP_NUM_THREADS": "2"}
    if popen:
        return subprocess.Popen(command, env=env, start_new_session=True, **popen)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, "\n".join(line for line in result.stderr.splitlines() if "rror" in line)[-4000:]
    return result


def needs_vllm():
    if not VLLM_PYTHON.exists():
        pytest.skip("no .venv-vllm (make setup-vllm; make test creates it)")


def engine_calls(log):
    return [int(line.rsplit(": ", 1)[1].split()[0]) for line in log.stdout.splitlines()
            if line.startswith("vllm engine call")]


@pytest.mark.slow
def test_hf_and_vllm_give_the_same_greedy_answers(memorised, tmp_path):
    needs_vllm()
    model, bench = memorised
    generate(sys.executable, model, bench, tmp_path / "hf", "hf", langs=("EN", "DE"))
    # the job starts in the training environment and re-executes itself in vLLM's (vllm_python)
    log = generate(sys.executable, model, bench, tmp_path / "vllm", "vllm", langs=("EN", "DE"),
                   extra={"vllm_python": str(VLLM_PYTHON)})
    assert f"re-executing in {VLLM_PYTHON}" in log.stdout and "backend vllm, whole-turn submission" in log.stdout
    assert engine_calls(log) == [32, 32]  # one call per turn: all questions of both languages
    # the old loop, with an answer budget the context cannot hold (1024 positions): every prompt is answered
    # whole with its budget shrunk to what the context leaves (generation.long_prompts: shrink), per prompt
    # of an engine call, and recorded per turn
    loop = generate(VLLM_PYTHON, model, bench, tmp_path / "loop", "vllm", batch_size=4, langs=("EN", "DE"),
                    extra={"vllm_submission": "batch", "max_new_tokens": 1010})
    assert engine_calls(loop) == [4] * 16  # 4 batches x 2 turns x 2 languages
    for lang in ("EN", "DE"):
        hf = {row["question_id"]: row for row in read_jsonl(tmp_path / "hf" / f"{lang}.jsonl")}
        vllm = {row["question_id"]: row for row in read_jsonl(tmp_path / "vllm" / f"{lang}.jsonl")}
        batched = {row["question_id"]: row for row in read_jsonl(tmp_path / "loop" / f"{lang}.jsonl")}
        assert sorted(hf) == sorted(vllm) == sorted(batched) and len(hf) == 16
        memorised_answers = 0
        for qid, row in hf.items():
            assert vllm[qid]["choices"][0]["turns"] == row["choices"][0]["turns"], qid
            assert batched[qid]["choices"][0]["turns"] == row["choices"][0]["turns"], qid
            # greedy answers end well before either budget
            assert batched[qid]["choices"] == vllm[qid]["choices"], qid
            assert [event["turn"] for event in batched[qid]["long_prompts"]] == [1, 2], qid
            for event in batched[qid]["long_prompts"]:
                assert event["action"] == "shrink" and event["context"] == 1024 and event["cut_tokens"] == 0
                assert event["answer_budget"] == 1024 - event["prompt_tokens"] < 1010
            assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp", "long_prompts"}
            assert row["long_prompts"] == vllm[qid]["long_prompts"] == []  # every prompt fit the context
            memorised_answers += row["choices"][0]["turns"][0] == FACTS[int(qid.split("_")[0]) - 1][1]
        if lang == "EN":
            assert memorised_answers >= 12  # the answers are the memorised ones, so greedy is unambiguous


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_a_killed_generation_resumes_with_the_unanswered_questions(memorised, tmp_path, backend):
    if backend == "vllm":
        needs_vllm()
    model, bench = memorised
    python = VLLM_PYTHON if backend == "vllm" else sys.executable
    partial = tmp_path / "EN.jsonl.partial"
    # killed in vLLM's batch loop (it writes answers batch by batch); resumed with whole-turn submission
    process = generate(python, model, bench, tmp_path, backend, batch_size=2, extra={"vllm_submission": "batch"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and (not partial.exists() or len(partial.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the job and its engine processes
    process.wait()
    answered = len(read_jsonl(partial, tolerate_torn_tail=True))
    assert 2 <= answered < 16 and not (tmp_path / "EN.jsonl").exists()
    log = generate(python, model, bench, tmp_path, backend, batch_size=2)
    assert f"resuming {tmp_path / 'EN.jsonl'}: {answered} of 16 questions already answered" in log.stdout + log.stderr
    if backend == "vllm":
        assert engine_calls(log) == [16 - answered] * 2  # only the unanswered questions, one call per turn
    rows = read_jsonl(tmp_path / "EN.jsonl")
    assert [r["question_id"] for r in rows] == [f"{i}_EN" for i in range(1, 17)]  # each once, in order
    assert not partial.exists()


def test_the_generate_rule_gets_its_base_models_generation_settings(tmp_path):
    """A per-base-model override reaches the job: experiment keys as the rule's params, execution keys
    (interpreter, GPUs, memory share) through the cell's section of the execution file; a vLLM model
    without its interpreter is a plan-time error naming the model."""
    import copy

    import yaml

    from conftest import snakemake

    config = copy.deepcopy(demo_config())
    config["compositions"], config["sizes"] = ["EN"], [config["sizes"][0]]
    model = config["base_models"][0]
    model["generation"] = {"backend": "vllm", "max_new_tokens": 7}
    model["launch"] = {"generation": {"vllm_python": str(tmp_path / "no-such-python")}}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    missing = snakemake(tmp_path, "-n", configfile=configfile, check=False)
    assert missing.returncode != 0
    assert "generation.backend: vllm needs a Python with vLLM" in missing.stdout + missing.stderr
    assert f"(base model {model['name']})" in missing.stdout + missing.stderr
    assert "make setup-vllm" in missing.stdout + missing.stderr
    model["launch"] = {"generation": {"vllm_python": sys.executable, "vllm_gpu_memory_utilization": 0.5},  # any
                       "resources": {"generate": {"gpus": 2}}}
    configfile.write_text(yaml.safe_dump(config))
    plan = snakemake(tmp_path, "-n", "-p", configfile=configfile)
    assert f"{sys.executable} -m mlit generate" in plan.stdout  # it re-executes itself in vllm_python
    assert '"backend": "vllm"' in plan.stdout and '"max_new_tokens": 7' in plan.stdout
    assert "vllm_gpu_memory_utilization" not in plan.stdout
    cell = f"{model['name']}__demo__EN__{config['sizes'][0]}__seed{config['seeds'][0]}"
    assert f"--execution-section generation/{cell}" in plan.stdout
    # the job reads this invocation's execution file (a dry run names it and writes nothing)
    from mlit.config import Grid
    from mlit.run_settings import execution_file

    execution = Grid(yaml.safe_load(configfile.read_text()), repo_root=REPO, dry_run=True).execution_settings()
    assert f"--execution {execution_file('results', execution)} " in plan.stdout
    written = execution["generation"][cell]
    assert written["vllm_python"] == sys.executable and written["vllm_gpu_memory_utilization"] == 0.5
    assert written["gpus"] == 2  # vLLM's tensor parallel size
