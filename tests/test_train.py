import json
import subprocess
import sys

import pytest
import torch

from mlit.files import write_jsonl
from mlit.train.sft import GuardedCollator, NoTrainableTokensError, train
from support import slow_training

SETTINGS = {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": 4, "effective_batch_size": 4,
            "max_length": 128, "logging_steps": 1}


def rows(n=8, answer="Die Hauptstadt ist Berlin."):
    return [{"messages": [{"role": "user", "content": f"Frage {i}: Was ist die Hauptstadt?"},
                          {"role": "assistant", "content": answer}]} for i in range(n)]


def test_training_writes_a_loadable_model_with_provenance(tmp_path, tiny_base_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    write_jsonl(tmp_path / "train.jsonl", rows())
    info = train(str(tiny_base_model), str(tmp_path / "train.jsonl"), tmp_path / "model", SETTINGS, seed=1)
    assert info["global_steps"] == 2 and info["examples"] == 8
    # only assistant tokens are trained: the answer plus its end-of-turn token, per example
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    answer_tokens = len(tokenizer("Die Hauptstadt ist Berlin.<|end|>", add_special_tokens=False)["input_ids"])
    assert info["trainable_tokens_per_epoch"] == 8 * answer_tokens
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.num_parameters() > 0 and tokenizer.chat_template
    saved = json.loads((tmp_path / "model" / "train_info.json").read_text())
    assert saved["data_sha256"] and saved["packages"]["trl"]
    assert (tmp_path / "model" / "loss.csv").read_text().startswith("step,epoch,loss")
    assert not (tmp_path / "model.tmp").exists()


def test_an_example_truncated_to_no_assistant_token_is_an_error(tmp_path, tiny_base_model):
    data = rows(4)
    data[2]["messages"][0]["content"] = "sehr lange Frage " * 200  # the answer falls beyond max_length
    write_jsonl(tmp_path / "train.jsonl", data)
    with pytest.raises(NoTrainableTokensError, match=r"train.jsonl: 1 row\(s\) have no assistant token .*rows \[2\]"):
        train(str(tiny_base_model), str(tmp_path / "train.jsonl"), tmp_path / "model", SETTINGS)
    assert not (tmp_path / "model").exists()


def test_a_template_without_generation_markers_is_refused(tmp_path, tiny_base_model):
    import shutil

    from transformers import AutoTokenizer

    base = tmp_path / "base"
    shutil.copytree(tiny_base_model, base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", "")
    tokenizer.save_pretrained(base)
    write_jsonl(tmp_path / "train.jsonl", rows(4))
    with pytest.raises(ValueError, match="not training-compatible"):
        train(str(base), str(tmp_path / "train.jsonl"), tmp_path / "model", SETTINGS)


def test_a_batch_without_trainable_tokens_is_an_error():
    collator = GuardedCollator(lambda examples: {"labels": torch.full((2, 5), -100)})
    with pytest.raises(NoTrainableTokensError, match="batch 1 has no trainable"):
        collator([{}, {}])
    ok = GuardedCollator(lambda examples: {"labels": torch.tensor([[-100, 4]])})
    assert ok([{}])["labels"].shape == (1, 2)


def test_a_checkpoint_is_saved_when_max_lost_minutes_have_passed():
    from types import SimpleNamespace

    from mlit.train.sft import TimedCheckpointCallback

    now = [0.0]
    callback = TimedCheckpointCallback(max_lost_minutes=10, clock=lambda: now[0])
    state = SimpleNamespace(global_step=1)

    def step(minutes, save_steps_due=False):
        now[0] += minutes * 60
        control = SimpleNamespace(should_save=save_steps_due)
        callback.on_step_end(None, state, control)
        if control.should_save:
            callback.on_save(None, state, control)
        return control.should_save

    assert [step(4), step(4), step(4), step(4), step(4)] == [False, False, True, False, False]
    assert step(1, save_steps_due=True) and callback.timed_saves == 1  # a save_steps save resets the clock
    assert not step(9) and step(1) and callback.timed_saves == 2


def test_the_tiny_builder_and_training_publish_through_one_function(tmp_path):
    from mlit.model.publish import publish_model, staging_dir

    class Tokenizer:
        def save_pretrained(self, path):
            (tmp_path / "out.tmp" / "tokenizer.json").write_text("{}")

    tmp = staging_dir(tmp_path / "out")
    (tmp / "checkpoints").mkdir(parents=True)
    (tmp_path / "base_info.json").write_text("{}")
    publish_model(tmp, tmp_path / "out", tokenizer=Tokenizer(),
                  save_weights=lambda path: (path / "model.safetensors").write_text("w"),
                  metadata={"loss.csv": "step\n", "train_info.json": {"a": 1}}, copy=[tmp_path / "base_info.json"],
                  drop=["checkpoints"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "base_info.json", "loss.csv", "model.safetensors", "tokenizer.json", "train_info.json"]
    assert not tmp.exists() and json.loads((tmp_path / "out" / "train_info.json").read_text()) == {"a": 1}


def test_own_language_system_messages_need_a_language_only_where_a_row_has_no_system_message():
    import datasets

    from mlit.model.chat_format import OPENGPTX_SYSTEM_MESSAGES
    from mlit.train.sft import with_system_messages

    judge_rows = datasets.Dataset.from_list([{"messages": [
        {"role": "system", "content": "You are a judge."}, {"role": "user", "content": "Rate it."},
        {"role": "assistant", "content": "Rating: [[7]]"}]}])
    kept = with_system_messages(judge_rows, "own_language", OPENGPTX_SYSTEM_MESSAGES)
    assert kept[0]["messages"][0]["content"] == "You are a judge."  # its own system message stays
    rows = datasets.Dataset.from_list([{"lang": "DE", "messages": [{"role": "user", "content": "Frage"},
                                                                   {"role": "assistant", "content": "Antwort"}]}])
    assert with_system_messages(rows, "own_language", OPENGPTX_SYSTEM_MESSAGES)[0]["messages"][0]["content"] \
        == OPENGPTX_SYSTEM_MESSAGES["DE"]
    with pytest.raises(ValueError, match="needs a 'lang' field"):
        with_system_messages(rows.remove_columns("lang"), "own_language", OPENGPTX_SYSTEM_MESSAGES)


def test_a_finished_worker_exits_with_its_code_and_output_but_without_teardown():
    """Workers skip interpreter teardown (native destructors aborted a finished rank in CI), but keep
    their exit code and every line they printed."""
    program = ("import atexit, sys\n"
               "from mlit.train.sft import exit_without_teardown\n"
               "atexit.register(lambda: print('teardown ran', flush=True))\n"
               "print('model published')\n"
               "print('a warning', file=sys.stderr)\n"
               "exit_without_teardown(143)\n")
    finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert finished.returncode == 143
    assert finished.stdout == "model published\n" and "a warning" in finished.stderr


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_one_before_it_resumed(tmp_path, tiny_base_model, capsys):
    """A training run killed after two checkpoints, whose newest model.safetensors is then cut in half
    (a full disk, a kill during the copy): the rerun names the damaged checkpoint and resumes from the one
    before it (main raised a SafetensorError without the path at every rerun)."""
    import os
    import signal
    import time

    write_jsonl(tmp_path / "train.jsonl", rows())
    settings = {**SETTINGS, "num_train_epochs": 3, "save_steps": 1, "save_total_limit": 3}  # 6 steps, a checkpoint each
    checkpoints = tmp_path / "model.tmp" / "checkpoints"
    job = subprocess.Popen([sys.executable, "-m", "mlit", "train-worker", "--base", str(tiny_base_model), "--data",
                            str(tmp_path / "train.jsonl"), "--settings", json.dumps(settings), "--seed", "1",
                            "--out", str(tmp_path / "model")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=slow_training.environment(checkpoint_delay_s=2), start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and job.poll() is None:
        if (checkpoints / "checkpoint-2" / "trainer_state.json").exists():
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert (checkpoints / "checkpoint-1" / "trainer_state.json").exists(), "no two checkpoints before the kill"
    assert not (tmp_path / "model").exists()
    weights = checkpoints / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    info = train(str(tiny_base_model), str(tmp_path / "train.jsonl"), tmp_path / "model", settings, seed=1)
    output = capsys.readouterr().out
    assert f"{checkpoints / 'checkpoint-2'} does not load (model.safetensors: SafetensorError" in output
    assert "resuming from checkpoint-1" in output
    assert info["resumed_from_step"] == 1 and info["global_steps"] == 6


def test_an_example_of_exactly_max_length_tokens_is_not_truncated(tiny_base_model):
    """The boundary of the truncation count: max_length tokens fit, one more is cut; the trained tokens lost
    are those at positions >= max_length (the last trained one is the end-of-turn token)."""
    from transformers import AutoTokenizer

    from mlit.train.truncation import truncation_report

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    example = {**rows(1)[0], "lang": "DE"}
    encoded = tokenizer.apply_chat_template([example["messages"]], tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    mask = encoded["assistant_masks"][0]
    length, trained, last_trained = len(encoded["input_ids"][0]), sum(mask), max(i for i, m in enumerate(mask) if m)
    fits = truncation_report([example], tokenizer, max_length=length)["DE"]
    assert fits == {"examples": 1, "truncated_examples": 0, "answer_tokens": trained, "answer_tokens_lost": 0,
                    "answer_tokens_lost_fraction": 0.0}
    assert truncation_report([example], tokenizer, max_length=length - 1)["DE"]["truncated_examples"] == 1
    kept = truncation_report([example], tokenizer, max_length=last_trained + 1)["DE"]
    assert kept["answer_tokens_lost"] == 0
    cut = truncation_report([example], tokenizer, max_length=last_trained)["DE"]
    assert cut["truncated_examples"] == 1 and cut["answer_tokens_lost"] == 1
    assert cut["answer_tokens_lost_fraction"] == 1 / trained


@pytest.mark.parametrize("report_to", ["none", "tensorboard"])
def test_training_report_to_reaches_trl_and_defaults_to_none(tmp_path, report_to):
    from mlit.settings import experiment_part
    from mlit.train.sft import sft_config

    settings = {"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 2,
                "effective_batch_size": 2}
    assert sft_config(settings, tmp_path, seed=0).report_to in ("none", ["none"], [])  # the default: nowhere
    # where logs go never reruns a training job: a launch key, not in the params (the experiment part)
    assert experiment_part("training", {**settings, "report_to": report_to}) == {
        "num_train_epochs": 1, "learning_rate": 1e-3, "effective_batch_size": 2}
    config = sft_config({**settings, "report_to": report_to}, tmp_path, seed=0)
    assert config.report_to in (report_to, [report_to]) or (report_to == "none" and config.report_to == [])


@pytest.mark.slow
def test_without_deepspeed_a_bf16_checkpoint_trains_fp32_master_weights_and_every_weight_moves(tmp_path,
                                                                                               tiny_base_model):
    """Pure bf16 training rounds an update below half a bf16 step away (lr 2e-5 on a weight of 1.0 or 0.02):
    without DeepSpeed the weights train in fp32 (bf16 autocast on a GPU) and are saved in bf16 again."""
    import shutil

    from transformers import AutoModelForCausalLM

    from mlit.train.sft import fit, prepare, training_settings

    base = tmp_path / "bf16-base"
    shutil.copytree(tiny_base_model, base)
    AutoModelForCausalLM.from_pretrained(tiny_base_model, dtype=torch.bfloat16).save_pretrained(base)
    write_jsonl(tmp_path / "train.jsonl", rows(12))
    settings = training_settings({**SETTINGS, "learning_rate": 2e-5, "warmup_steps": 0, "lr_scheduler_type": "constant",
                                  "save_steps": 10**6})
    run = prepare(str(base), str(tmp_path / "train.jsonl"), tmp_path / "model", settings, seed=1)
    before = {name: p.detach().float().clone() for name, p in run.trainer.model.named_parameters()}
    fit(run)
    assert run.trainer.state.global_step == 3
    unchanged = {}
    for name, param in run.trainer.model.named_parameters():
        if name.endswith("embed_tokens.weight"):
            continue  # rows of tokens not in the data get no gradient
        same = (param.detach() == before[name]).float().mean().item()
        if same:
            unchanged[name] = round(same, 3)
    assert not unchanged, f"fraction of elements unchanged after 3 steps: {unchanged}"
    assert {p.dtype for p in run.trainer.model.parameters()} == {torch.float32}  # the master weights
    assert run.saved_dtype == torch.bfloat16  # published as the checkpoint was (finalize)
