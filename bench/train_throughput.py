"""Training throughput: the project's training path against TRL's defaults, side by side.

Same model, same data (synthetic instruction-length chat examples), one process each, run one after
the other in separate subprocesses (so peak memory is per run). Like with like: the variants differ
only in how a step's batch is laid out (TRL's default 8 padded examples against the project's packed
sequences, and the steps that give both the same token budget); every other setting (activation
checkpointing, loss masking, optimizer, schedule, precision, seed) is the project's in both, and all
are printed. Prints tokens/s (non-padding tokens per second after a warm-up), MFU on a GPU, peak
memory, loss, and the ratios.

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


# what both variants print; they may differ only in COMPARED (how a step's batch is laid out)
SHOWN = ["per_device_train_batch_size", "gradient_accumulation_steps", "packing", "packing_strategy", "padding_free",
         "max_length", "activation_checkpointing", "assistant_only_loss", "learning_rate", "lr_scheduler_type",
         "warmup_steps", "weight_decay", "max_grad_norm", "optim", "bf16", "use_liger_kernel", "seed", "data_seed",
         "dataloader_num_workers", "torch_compile", "max_steps"]
COMPARED = {"per_device_train_batch_size", "packing", "padding_free", "max_steps"}


def variant_args(variant: str, out: str, preset: dict, max_steps: int, activation_checkpointing: bool):
    """The project's SFTConfig (mlit.train.sft.sft_config) and TRL's defaults with every setting that is
    not being compared (COMPARED: batch layout, packing, and the steps that give the same token budget)
    set to the project's values, activation checkpointing included (TRL's default is on)."""
    import torch
    from trl import SFTConfig

    from mlit.train.sft import sft_config

    cuda = torch.cuda.is_available()
    settings = {"learning_rate": 2e-5, "epochs": 1, "max_steps": max_steps, "lr_scheduler": "linear",
                "per_device_batch_size": preset["project_batch"], "max_length": preset["max_length"],
                "packing": True, "activation_checkpointing": activation_checkpointing, "logging_steps": 1,
                "save_steps": 10**9}
    project = sft_config(settings, Path(out), seed=42)
    project.save_strategy = "no"
    if variant == "mlit":
        return project
    # TRL 1.16's defaults for what is compared: 8 unpacked, padded examples per step; max_steps: the same tokens
    same = {key: getattr(project, key) for key in SHOWN if key not in COMPARED}  # through __init__: aliases follow
    return SFTConfig(output_dir=out, use_cpu=not cuda, report_to="none", save_strategy="no",
                     include_num_input_tokens_seen="non_padding", max_steps=max_steps,
                     logging_steps=project.logging_steps, **same)


def shown(args) -> dict:
    return {key: str(getattr(args, key)).replace("SchedulerType.", "").replace("OptimizerNames.", "")
            for key in SHOWN}


def run_one(variant: str, model_dir: str, data: str, preset: dict, max_steps: int,
            activation_checkpointing: bool = False) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    cuda = torch.cuda.is_available()
    out = tempfile.mkdtemp(prefix=f"bench-{variant}-")
    args = variant_args(variant, out, preset, max_steps, activation_checkpointing)
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
    parameters = sum(p.numel() for p in model.parameters())
    tokens_per_s = meter.rate()
    return {"variant": variant, "device": torch.cuda.get_device_name() if cuda else "cpu",
            "tokens_per_s": tokens_per_s, "tokens_seen": int(trainer.state.num_input_tokens_seen),
            "steps": trainer.state.global_step, "wall_s": wall,
            "peak_memory_gib": (torch.cuda.max_memory_allocated() if cuda else
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30,
            "mfu": mfu(model, tokens_per_s, preset["max_length"]) if cuda else None,
            "final_loss": sum(tail) / len(tail) if tail else None,
            "parameters": parameters, "settings": shown(args)}


def mfu(model, tokens_per_s: float, seq_len: int) -> float | None:
    """Model FLOPs utilisation: (6 N + 12 L h s) FLOPs per token (forward and backward, the PaLM
    appendix B estimate, attention over sequence length s) x tokens/s over the GPU's dense bf16 peak.
    None for a GPU without a known peak."""
    import torch

    peaks = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
    name = torch.cuda.get_device_name()
    peak = next((value for key, value in peaks.items() if key in name), None)
    if peak is None:
        return None
    config = model.config
    n = sum(p.numel() for p in model.parameters())
    flops_per_token = 6 * n + 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return tokens_per_s * flops_per_token / peak


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
    parser.add_argument("--activation-checkpointing", action="store_true",
                        help="both variants with activation checkpointing (default: both without, as the project)")
    parser.add_argument("--examples", type=int, help="override the preset's number of chats (a quicker run)")
    parser.add_argument("--model", help="an already built model directory of the preset's shape (default: build it)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()

    import torch

    preset_name = args.preset or ("gpu-1b" if torch.cuda.is_available() else "cpu-tiny")
    preset = PRESETS[preset_name]
    if args.worker:
        print("RESULT " + json.dumps(run_one(args.worker, args.model_dir, args.data, preset, args.max_steps,
                                             args.activation_checkpointing)))
        return

    from mlit.files import write_jsonl
    from mlit.model.tiny import build_base_model

    work = Path(tempfile.mkdtemp(prefix="mlit-bench-"))
    corpus = [str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl") for lang in ("EN", "DE", "FR", "IT", "ES")]
    model_dir = Path(args.model) if args.model else work / "model"
    if not args.model:
        build_base_model(preset["model"], corpus, model_dir)
    chats = synthetic_chats(args.examples or preset["examples"])
    write_jsonl(work / "train.jsonl", chats)
    # same token budget for both: TRL's default batch is 8 unpacked examples per step; the project
    # packs `project_batch` sequences of max_length per step
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lengths = [min(preset["max_length"], len(tokenizer.apply_chat_template(c["messages"], tokenize=True,
                                                                           return_dict=True)["input_ids"]))
               for c in chats]
    total = sum(lengths) * args.epochs_of_tokens
    steps = {"trl_defaults": max(4, round(total / (8 * sum(lengths) / len(lengths)))),
             "mlit": max(4, round(total / (preset["project_batch"] * preset["max_length"] * 0.98)))}
    results = []
    for variant in ("trl_defaults", "mlit"):
        command = [sys.executable, __file__, "--preset", preset_name, "--worker", variant, "--model-dir",
                   str(model_dir), "--data", str(work / "train.jsonl"), "--max-steps", str(steps[variant]),
                   *(["--activation-checkpointing"] if args.activation_checkpointing else [])]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
        results.append(json.loads(line[0][len("RESULT "):]))
    base, ours = results
    print(f"\ntraining throughput, preset {preset_name} ({base['parameters']:,} parameters, {base['device']}), "
          f"{len(chats)} chats, mean {sum(lengths) / len(lengths):.0f} tokens, max_length {preset['max_length']}")
    print(f"\n{'setting':30} {'trl_defaults':>16} {'mlit':>16}")
    for key in SHOWN:
        mark = "  (compared)" if key in COMPARED else ("  DIFFERS" if base["settings"][key] != ours["settings"][key]
                                                       else "")
        print(f"{key:30} {base['settings'][key]:>16} {ours['settings'][key]:>16}{mark}")
    unequal = [key for key in SHOWN if key not in COMPARED and base["settings"][key] != ours["settings"][key]]
    if unequal:
        raise SystemExit(f"not like with like: {unequal} differ")
    print(f"\n{'variant':14} {'tokens/s':>10} {'MFU':>6} {'steps':>6} {'tokens':>9} {'wall s':>7} {'peak GiB':>9} "
          f"{'final loss':>10}")
    for r in results:
        mfu_text = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(f"{r['variant']:14} {r['tokens_per_s']:10.0f} {mfu_text:>6} {r['steps']:6d} {r['tokens_seen']:9d} "
              f"{r['wall_s']:7.1f} {r['peak_memory_gib']:9.2f} {r['final_loss']:10.3f}")
    ratio = ours["tokens_per_s"] / base["tokens_per_s"]
    memory_ratio = ours["peak_memory_gib"] / base["peak_memory_gib"]
    print(f"ratio mlit / trl_defaults: {ratio:.2f}x tokens/s, {memory_ratio:.2f}x peak memory")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": preset_name, "results": results, "ratio": ratio,
                                              "memory_ratio": memory_ratio}, indent=2))


if __name__ == "__main__":
    main()
