import json

import pytest
import torch

from mlit.files import write_jsonl
from mlit.train.sft import GuardedCollator, NoTrainableTokensError, train

SETTINGS = {"learning_rate": 1e-3, "epochs": 1, "per_device_batch_size": 4, "max_length": 128, "logging_steps": 1}


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
