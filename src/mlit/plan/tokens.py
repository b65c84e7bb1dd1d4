"""Tokens of a training set as the training step sees them, or an estimate where it cannot be counted.

``count_tokens`` renders each prepared row exactly as ``mlit.train.sft`` does (the system message of
``training.system_message``, then the prepared base model's chat template through
``tokenizer.apply_chat_template``, which is what TRL tokenizes) and keeps the first ``max_length``
tokens, as TRL's truncation does. It returns the sums the FLOP count needs: tokens and squared
lengths (attention). Without the tokenizer it falls back to characters / 4; without the data, to the
grid's example count x an assumed mean length. ``source`` says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHARS_PER_TOKEN = 4  # the judge estimate's rule of thumb (mlit.judge.step.write_dry_run)
BATCH_SIZE = 1000


@dataclass(frozen=True)
class TokenCount:
    examples: int
    tokens: int             # per epoch, after truncation to max_length
    squared_lengths: int    # sum over examples of (tokens of the example)^2, per epoch
    truncated_examples: int | None
    source: str             # counted | estimated: characters/4 | estimated: examples x assumed length


def read_rows(data_path: str | Path) -> list[dict]:
    from mlit.files import read_jsonl

    return list(read_jsonl(data_path))


def rendered_rows(rows: list[dict], system_message: str, base_info: dict) -> list[list[dict]]:
    """The conversations of ``rows`` with the training step's system message (mlit.train.sft)."""
    import datasets

    from mlit.train.sft import with_system_messages

    datasets.disable_progress_bars()  # one map per data cell: no bar each

    dataset = datasets.Dataset.from_list([{"messages": row["messages"], "lang": row.get("lang")} for row in rows])
    dataset = with_system_messages(dataset, system_message, base_info["chat_format"].get("system_messages") or {})
    return dataset["messages"]


def count_tokens(data_path: str | Path, base_model: str | Path, max_length: int, system_message: str) -> TokenCount:
    """Count the tokens of a prepared training set with a prepared base model's tokenizer."""
    from transformers import AutoTokenizer

    from mlit.model.base import read_base_info

    base_info = read_base_info(base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model), trust_remote_code=bool(base_info.get("trust_remote_code")))
    conversations = rendered_rows(read_rows(data_path), system_message, base_info)
    tokens = squares = truncated = 0
    for start in range(0, len(conversations), BATCH_SIZE):
        encoded = tokenizer.apply_chat_template(conversations[start:start + BATCH_SIZE], tokenize=True,
                                                return_dict=True)
        for input_ids in encoded["input_ids"]:
            length = min(len(input_ids), max_length)
            tokens += length
            squares += length * length
            truncated += int(len(input_ids) > max_length)
    return TokenCount(examples=len(conversations), tokens=tokens, squared_lengths=squares,
                      truncated_examples=truncated, source="counted")


def estimate_from_characters(data_path: str | Path, max_length: int) -> TokenCount:
    """Without the tokenizer: characters of the messages / 4 per example (no chat template, no system
    message), truncated at max_length."""
    tokens = squares = truncated = 0
    rows = read_rows(data_path)
    for row in rows:
        estimate = sum(len(message["content"]) for message in row["messages"]) // CHARS_PER_TOKEN + 1
        length = min(estimate, max_length)
        tokens += length
        squares += length * length
        truncated += int(estimate > max_length)
    return TokenCount(examples=len(rows), tokens=tokens, squared_lengths=squares, truncated_examples=truncated,
                      source="estimated: characters/4")


def estimate_from_examples(examples: int, tokens_per_example: float, max_length: int) -> TokenCount:
    """Without the data: every example the assumed mean length (capped at max_length)."""
    length = min(int(round(tokens_per_example)), max_length)
    return TokenCount(examples=examples, tokens=examples * length, squared_lengths=examples * length * length,
                      truncated_examples=None, source=f"estimated: examples x {length} assumed tokens")


def manifest_examples(data_path: str | Path) -> int | None:
    manifest = Path(data_path).with_name("manifest.json")
    if manifest.exists():
        return int(json.loads(manifest.read_text(encoding="utf-8"))["n_rows"])
    return None
