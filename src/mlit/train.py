"""Supervised fine-tuning with TRL's SFTTrainer on chat-format data, loss on assistant turns only.

The output directory holds a loadable model (safetensors, tokenizer, chat template), the loss
curve (``loss.csv``) and provenance (``train_info.json``). It is written to ``<out>.tmp`` and
renamed when complete, so a killed job never leaves something that looks finished.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

from mlit.io import atomic_write_text, sha256_file, write_json


class NoTrainableTokensError(RuntimeError):
    """Assistant-only loss would train on nothing: an example or a batch has no assistant token."""


def untrainable_rows(dataset, tokenizer, max_length: int) -> list[int]:
    """Rows whose first ``max_length`` tokens hold no assistant token (nothing to learn from)."""
    bad = []
    for index, messages in enumerate(dataset["messages"]):
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
        if 1 not in encoded["assistant_masks"][:max_length]:
            bad.append(index)
    return bad


def check_trainable(raw_dataset, prepared_dataset, tokenizer, data_path: str, max_length: int, packing: bool) -> int:
    """Stop if masking left an example, or the whole set, without a trainable token.

    TRL silently drops examples that truncation left fully masked; here that is an error naming the
    rows. Returns the number of trainable tokens per epoch."""
    if not packing and len(prepared_dataset) != len(raw_dataset):
        bad = untrainable_rows(raw_dataset, tokenizer, max_length)
        raise NoTrainableTokensError(
            f"{data_path}: {len(raw_dataset) - len(prepared_dataset)} row(s) have no assistant token left to train "
            f"on within max_length={max_length} (rows {bad[:10]}{' ...' if len(bad) > 10 else ''}); the assistant "
            "turn was cut off. Raise training.max_length or drop over-long rows."
        )
    total = sum(sum(1 for label in labels if label != -100) for labels in prepared_dataset["labels"])
    if total == 0:
        raise NoTrainableTokensError(
            f"{data_path}: no trainable (assistant) token in the whole dataset after masking; the chat template "
            "must mark assistant turns with {% generation %} ... {% endgeneration %}"
        )
    return total


class GuardedCollator:
    """Wraps a collator: a batch whose labels are all -100 is an error, never a silent zero loss."""

    def __init__(self, collator):
        self.collator = collator
        self.batches = 0

    def __call__(self, examples):
        batch = self.collator(examples)
        self.batches += 1
        if int((batch["labels"] != -100).sum()) == 0:
            raise NoTrainableTokensError(
                f"batch {self.batches} has no trainable (assistant) token; check the data and the chat template"
            )
        return batch


def package_versions() -> dict[str, str]:
    names = ["torch", "transformers", "trl", "accelerate", "datasets", "deepspeed", "mlit"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def loss_csv(log_history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["step", "epoch", "loss", "learning_rate", "grad_norm"])
    for entry in log_history:
        if "loss" in entry:
            writer.writerow([entry.get("step"), entry.get("epoch"), entry["loss"], entry.get("learning_rate"),
                             entry.get("grad_norm")])
    return buffer.getvalue()


def sft_config(settings: dict, output_dir: Path, seed: int):
    import torch
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    bf16 = settings.get("bf16")
    if bf16 is None:
        bf16 = cuda and torch.cuda.is_bf16_supported()
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=settings.get("epochs", 1),
        max_steps=settings.get("max_steps", -1),
        learning_rate=settings["learning_rate"],
        lr_scheduler_type=settings.get("lr_scheduler", "cosine"),
        warmup_steps=settings.get("warmup_ratio", 0.0),
        weight_decay=settings.get("weight_decay", 0.0),
        per_device_train_batch_size=settings.get("per_device_batch_size", 8),
        gradient_accumulation_steps=settings.get("gradient_accumulation_steps", 1),
        max_length=settings.get("max_length", 1024),
        packing=settings.get("packing", False),
        assistant_only_loss=True,
        activation_checkpointing=settings.get("activation_checkpointing", False),
        bf16=bf16,
        use_cpu=not cuda,
        logging_steps=settings.get("logging_steps", 5),
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
    )


def train(base_model: str, data_path: str, out_dir: Path, settings: dict, seed: int = 0) -> dict:
    """Fine-tune ``base_model`` (hub id or directory) on ``data_path`` (JSONL of ``messages``)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    started = time.time()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset = datasets.load_dataset("json", data_files=data_path, split="train")
    dataset = dataset.select_columns(["messages"])
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto")
    args = sft_config(settings, tmp / "checkpoints", seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainable_tokens = check_trainable(dataset, trainer.train_dataset, tokenizer, data_path, args.max_length,
                                       args.packing)
    trainer.data_collator = GuardedCollator(trainer.data_collator)
    result = trainer.train()
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    atomic_write_text(tmp / "loss.csv", loss_csv(trainer.state.log_history))
    manifest = Path(data_path).with_name("manifest.json")
    info = {
        "base_model": base_model,
        "data": data_path,
        "data_sha256": sha256_file(data_path),
        "data_manifest_sha256": sha256_file(manifest) if manifest.exists() else None,
        "settings": settings,
        "seed": seed,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "examples": len(dataset),
        "trainable_tokens_per_epoch": trainable_tokens,
        "global_steps": trainer.state.global_step,
        "final_train_loss": result.training_loss,
        "wall_time_s": round(time.time() - started, 1),
        "packages": package_versions(),
    }
    write_json(tmp / "train_info.json", info)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    print(json.dumps({k: info[k] for k in ("examples", "global_steps", "final_train_loss", "wall_time_s")}))
    return info
