"""Training throughput: the project's training path against TRL's defaults, side by side.

Same model, same data (synthetic instruction-length chat examples), one process each, run one after
the other in separate subprocesses (so peak memory is per run). Prints tokens/s (non-padding tokens
per second after a warm-up), peak memory, loss, and the ratio.

    python bench/train_throughput.py                      # CPU: the tiny model, about a minute
    python bench/train_throughput.py --preset gpu-1b      # GPU: a 1.24B Llama-shaped model, bf16

Nothing is downloaded: the model is built from a config with a tokenizer trained on the shipped text.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

PRESETS = {
    # the demo's tiny model on the CPU
    "cpu-tiny": {"model": {"vocab_size": 4000, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "max_position_embeddings": 2048},
                 "examples": 384, "max_length": 1024, "project_batch": 4},
    # Llama-3.2-1B's shape (1.24B parameters with its 128k vocabulary), bf16
    "gpu-1b": {"model": {"vocab_size": 8000, "model_vocab_size": 128256, "hidden_size": 2048,
                         "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                         "num_key_value_heads": 8, "max_position_embeddings": 2048, "dtype": "bfloat16"},
               "examples": 3000, "max_length": 2048, "project_batch": 8},
}


def synthetic_chats(count: int, seed: int = 0) -> list[dict]:
    """Instruction-like lengths: short prompts, answers from a sentence to several paragraphs."""
    from mlit.model.tiny import corpus_texts

    words = " ".join(corpus_texts([str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl")
                                   for lang in ("EN", "DE", "FR", "IT", "ES")])).split()
    rng = random.Random(seed)

    def text(n):
        start = rng.randrange(len(words) - n)
        return " ".join(words[start:start + n])

    return [{"messages": [{"role": "user", "content": text(rng.randint(8, 120))},
                          {"role": "assistant", "content": text(int(rng.lognormvariate(5.0, 0.8)) % 900 + 10)}]}
            for _ in range(count)]


class Meter:
    """Non-padding tokens per second between the end of step ``warmup`` and the last step."""

    def __init__(self, warmup: int):
        self.warmup, self.marks = warmup, []

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class _Cb(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                meter.marks.append((state.global_step, time.perf_counter(), state.num_input_tokens_seen))

        return _Cb()

    def rate(self) -> float:
        marks = [m for m in self.marks if m[0] >= self.warmup] or self.marks
        (_, t0, n0), (_, t1, n1) = marks[0], marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


def run_one(variant: str, model_dir: str, data: str, preset: dict, max_steps: int) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from mlit.train.sft import sft_config

    cuda = torch.cuda.is_available()
    out = tempfile.mkdtemp(prefix=f"bench-{variant}-")
    if variant == "trl_defaults":
        # TRL 1.16's defaults; only what a run must say: output, length, precision, device, no saving
        args = SFTConfig(output_dir=out, max_length=preset["max_length"], bf16=cuda, use_cpu=not cuda,
                         max_steps=max_steps, report_to="none", save_strategy="no", logging_steps=5,
                         include_num_input_tokens_seen="non_padding")
    else:
        settings = {"learning_rate": 2e-5, "epochs": 1, "max_steps": max_steps, "lr_scheduler": "linear",
                    "per_device_batch_size": preset["project_batch"], "max_length": preset["max_length"],
                    "packing": True, "activation_checkpointing": False, "logging_steps": 5, "save_steps": 10**9}
        args = sft_config(settings, Path(out), seed=42)
        args.save_strategy = "no"
    if variant == "trl_defaults":
        args.learning_rate = 2e-5
        args.lr_scheduler_type = "linear"
    dataset = datasets.load_dataset("json", data_files=data, split="train")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    meter = Meter(warmup=3)
    trainer.add_callback(meter.callback())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tail = logged[-max(1, len(logged) // 5):]
    return {"variant": variant, "device": torch.cuda.get_device_name() if cuda else "cpu",
            "tokens_per_s": meter.rate(), "tokens_seen": int(trainer.state.num_input_tokens_seen),
            "steps": trainer.state.global_step, "wall_s": wall,
            "peak_memory_gib": (torch.cuda.max_memory_allocated() if cuda else
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30,
            "final_loss": sum(tail) / len(tail) if tail else None,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="default: gpu-1b when a GPU is visible, else cpu-tiny")
    parser.add_argument("--epochs-of-tokens", type=float, default=1.0,
                        help="both variants see the same number of tokens: this many passes over the data")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    import torch

    preset_name = args.preset or ("gpu-1b" if torch.cuda.is_available() else "cpu-tiny")
    preset = PRESETS[preset_name]
    if args.worker:
        print("RESULT " + json.dumps(run_one(args.worker, args.model_dir, args.data, preset, args.max_steps)))
        return

    from mlit.files import write_jsonl
    from mlit.model.tiny import build_base_model

    work = Path(tempfile.mkdtemp(prefix="mlit-bench-"))
    corpus = [str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl") for lang in ("EN", "DE", "FR", "IT", "ES")]
    build_base_model(preset["model"], corpus, work / "model")
    chats = synthetic_chats(preset["examples"])
    write_jsonl(work / "train.jsonl", chats)
    # same token budget for both: TRL's default batch is 8 unpacked examples per step; the project
    # packs `project_batch` sequences of max_length per step
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "model")
    lengths = [min(preset["max_length"], len(tokenizer.apply_chat_template(c["messages"], tokenize=True,
                                                                           return_dict=True)["input_ids"]))
               for c in chats]
    total = sum(lengths) * args.epochs_of_tokens
    steps = {"trl_defaults": max(4, round(total / (8 * sum(lengths) / len(lengths)))),
             "mlit": max(4, round(total / (preset["project_batch"] * preset["max_length"] * 0.98)))}
    results = []
    for variant in ("trl_defaults", "mlit"):
        command = [sys.executable, __file__, "--preset", preset_name, "--worker", variant, "--model-dir",
                   str(work / "model"), "--data", str(work / "train.jsonl"), "--max-steps", str(steps[variant])]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
        results.append(json.loads(line[0][len("RESULT "):]))
    base, ours = results
    print(f"\ntraining throughput, preset {preset_name} ({base['parameters']:,} parameters, {base['device']}), "
          f"{len(chats)} chats, mean {sum(lengths) / len(lengths):.0f} tokens, max_length {preset['max_length']}")
    print(f"{'variant':14} {'tokens/s':>10} {'steps':>6} {'tokens':>9} {'wall s':>7} {'peak GiB':>9} {'final loss':>10}")
    for r in results:
        print(f"{r['variant']:14} {r['tokens_per_s']:10.0f} {r['steps']:6d} {r['tokens_seen']:9d} {r['wall_s']:7.1f} "
              f"{r['peak_memory_gib']:9.2f} {r['final_loss']:10.3f}")
    ratio = ours["tokens_per_s"] / base["tokens_per_s"]
    print(f"ratio mlit / trl_defaults: {ratio:.2f}x tokens/s")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": preset_name, "results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
