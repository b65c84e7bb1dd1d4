"""The demo base model: a tiny Llama-architecture model with random weights and a byte-level BPE
tokenizer trained locally on the shipped text (instruction data and MT-Bench-X)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mlit.model.demo_template import CHAT_TEMPLATE, END_OF_TURN, SPECIAL_TOKENS
from mlit.model.publish import publish_model, staging_dir
from mlit.safe_paths import checked, remove_tree

DEFAULTS = {"vocab_size": 4000, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 2048, "seed": 0}


def corpus_texts(files: list[str]) -> Iterator[str]:
    """Every string value in the given JSONL files."""

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield from strings(json.loads(line))


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token=END_OF_TURN,
                                   pad_token="<pad>", model_max_length=DEFAULTS["max_position_embeddings"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_base_model(spec: dict, corpus_files: list[str], out_dir: Path) -> None:
    """Write a loadable model directory (safetensors, config, tokenizer with chat template)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    checked(out_dir)  # before any work: the output must be a plain child of its directory
    spec = {**DEFAULTS, **spec}
    tokenizer = train_tokenizer(list(corpus_texts(corpus_files)), spec["vocab_size"])
    tokenizer.model_max_length = spec["max_position_embeddings"]
    config = LlamaConfig(
        vocab_size=max(len(tokenizer), spec.get("model_vocab_size") or 0),  # rows beyond the tokenizer: unused
        hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_hidden_layers"], num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec.get("num_key_value_heads") or spec["num_attention_heads"],
        max_position_embeddings=spec["max_position_embeddings"],
        tie_word_embeddings=spec.get("tie_word_embeddings", True), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(config).to(getattr(torch, spec.get("dtype", "float32")))
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    tmp = staging_dir(out_dir)
    remove_tree(tmp)
    publish_model(tmp, out_dir, tokenizer=tokenizer,
                  save_weights=lambda path: model.save_pretrained(path, safe_serialization=True))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"built {out_dir}: {n_params:,} parameters, vocabulary {len(tokenizer)}")
