"""Training throughput of the study's path, its variants beside it, and TRL's defaults as the outside reference.

Same model, same data (synthetic instruction-length chats), one epoch each, every run in its own
subprocess (so peak memory is per run), each run repeated (--repeats, default 3) for the spread:

- paper: the paper's settings through mlit's own SFTConfig (mlit.train.sft.sft_config): unpacked, padded
  batches, activation checkpointing on, fp32 master weights (on a GPU: bf16 autocast over fp32 weights),
  the model's configured attention (sdpa);
- no_checkpointing: the same, activation checkpointing off;
- packed_flex: packed (bfd, padding-free) with a varlen-aware attention (flex_attention on a GPU; on the
  CPU sdpa with the block-diagonal mask, as flex_attention needs a compiler there);
- group_by_length: the paper's settings, batches of similar lengths (train_sampling_strategy);
- trl_defaults: TRL's SFTConfig defaults (8 examples per step, max_length 1024, its own model loading).

Tokens/s counts non-padding tokens after a warm-up. MFU = (6 N tokens + 12 L d sum(s_i^2)) / time / peak,
from the real tokens and the real sequence (segment) lengths s_i of every measured batch, against the peak
measured at the start (a bf16 GEMM on a GPU, an fp32 GEMM on the CPU), printed.

    python bench/train_throughput.py                      # CPU: the tiny model
    python bench/train_throughput.py --preset gpu-1b      # GPU: a 1.24B Llama-shaped model

Nothing is downloaded: the model is built from a config with a tokenizer trained on the shipped text.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import statistics
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
                 "examples": 192, "max_length": 1024, "batch": 8},
    # Llama-3.2-1B's shape (1.24B parameters with its 128k vocabulary); saved in bf16, trained over fp32 weights
    "gpu-1b": {"model": {"vocab_size": 8000, "model_vocab_size": 128256, "hidden_size": 2048,
                         "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                         "num_key_value_heads": 8, "max_position_embeddings": 2048, "dtype": "bfloat16"},
               "examples": 320, "max_length": 2048, "batch": 8},
}
VARIANTS = ["paper", "no_checkpointing", "packed_flex", "group_by_length", "trl_defaults"]
SHOWN = ["per_device_train_batch_size", "packing", "padding_free", "max_length", "activation_checkpointing",
         "assistant_only_loss", "bf16", "train_sampling_strategy", "learning_rate", "optim", "attention", "weights"]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def measured_peak() -> tuple[float, str]:
    """FLOP/s of a large matrix product on this machine: bf16 8192^3 on a GPU, fp32 1024^3 on the CPU
    (three warm-ups, the mean of ten timed products)."""
    import torch

    cuda = torch.cuda.is_available()
    n, dtype, device = (8192, torch.bfloat16, "cuda") if cuda else (1024, torch.float32, "cpu")
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    flops = 2 * n**3 * 10 / (time.perf_counter() - started)
    return flops, f"{str(dtype).removeprefix('torch.')} {n}x{n}x{n} GEMM on {device}"


def flop_rate(flops: float) -> str:
    return f"{flops / 1e12:.1f} TFLOP/s" if flops >= 1e12 else f"{flops / 1e9:.1f} GFLOP/s"


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


def segment_lengths(batch) -> list[int]:
    """The real sequence lengths of a collated batch: packed rows split where position_ids restart,
    padded rows by their attention mask."""
    if "position_ids" in batch and "attention_mask" not in batch:
        lengths = []
        for row in batch["position_ids"].tolist():
            for position in row:
                if position == 0 or not lengths:
                    lengths.append(0)
                lengths[-1] += 1
        return lengths
    return [int(n) for n in batch["attention_mask"].sum(-1).tolist()]


class LengthRecorder:
    """Wraps the trainer's collator: the segment lengths of every batch, in order."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.batches.append(segment_lengths(batch))
        return batch


class Meter:
    """Step end times; the measured window runs from the end of step ``warmup`` to the last step (from the
    start of training when there are fewer steps)."""

    def __init__(self, warmup: int):
        self.warmup, self.marks = warmup, []

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class _Cb(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                meter.marks.append((0, time.perf_counter()))  # a run of fewer steps than the warm-up

            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                meter.marks.append((state.global_step, time.perf_counter()))

        return _Cb()

    def window(self, batches: list[list[int]]) -> tuple[float, list[int]]:
        """(seconds, the segment lengths of the batches of the measured steps)."""
        marks = [m for m in self.marks if m[0] >= self.warmup]
        if len(marks) < 2:
            marks = self.marks
        (s0, t0), (s1, t1) = marks[0], marks[-1]
        return t1 - t0, [length for batch in batches[s0:s1] for length in batch]


def variant_args(variant: str, out: str, preset: dict, settings_overrides: dict | None = None):
    import torch
    from trl import SFTConfig

    from mlit.train.sft import sft_config

    cuda = torch.cuda.is_available()
    if variant == "trl_defaults":
        return SFTConfig(output_dir=out, use_cpu=not cuda, report_to="none", save_strategy="no", logging_steps=1,
                         include_num_input_tokens_seen="non_padding", num_train_epochs=1,
                         **({} if cuda else {"bf16": False}))
    settings = {"learning_rate": 2e-5, "num_train_epochs": 1, "lr_scheduler_type": "linear", "per_device_train_batch_size": preset["batch"],
                "effective_batch_size": preset["batch"],
                "max_length": preset["max_length"], "packing": False, "activation_checkpointing": True,
                "logging_steps": 1, "save_steps": 10**9, **(settings_overrides or {})}
    if variant == "no_checkpointing":
        settings["activation_checkpointing"] = False
    if variant == "packed_flex":
        settings.update(packing=True, padding_free=True)
    args = sft_config(settings, Path(out), seed=42)
    args.save_strategy = "no"
    if variant == "group_by_length":
        args.train_sampling_strategy = "group_by_length"
    return args


def attention(variant: str) -> str:
    import torch

    return "flex_attention" if variant == "packed_flex" and torch.cuda.is_available() else "sdpa"


def run_one(variant: str, model_dir: str, data: str, preset: dict) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    cuda = torch.cuda.is_available()
    out = tempfile.mkdtemp(prefix=f"bench-{variant}-")
    args = variant_args(variant, out, preset)
    dataset = datasets.load_dataset("json", data_files=data, split="train")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if variant == "trl_defaults":
        model = model_dir  # TRL loads it its own way (fp32 unless told otherwise)
    else:  # fp32 master weights; the configured attention, or the varlen-aware one for the packed variant
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                     attn_implementation=attention(variant))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    recorder = LengthRecorder(trainer.data_collator)
    trainer.data_collator = recorder
    meter = Meter(warmup=2)
    trainer.add_callback(meter.callback())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    seconds, lengths = meter.window(recorder.batches)
    model = trainer.model
    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tail = logged[-max(1, len(logged) // 5):]
    tokens = sum(lengths)
    flops = 6 * parameters * tokens + 12 * config.num_hidden_layers * config.hidden_size * sum(s * s for s in lengths)
    shown = {key: str(getattr(args, key, "")).replace("OptimizerNames.", "") for key in SHOWN
             if key not in ("attention", "weights")}
    shown.update(attention=model.config._attn_implementation, weights=str(next(model.parameters()).dtype))
    return {"variant": variant, "tokens_per_s": tokens / seconds if seconds > 0 else float("nan"),
            "flops_per_s": flops / seconds if seconds > 0 else float("nan"), "measured_tokens": tokens,
            "tokens_seen": int(trainer.state.num_input_tokens_seen), "steps": trainer.state.global_step,
            "wall_s": wall, "final_loss": sum(tail) / len(tail) if tail else None,
            "peak_memory_gib": (torch.cuda.max_memory_allocated() if cuda else
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30,
            "parameters": parameters, "settings": shown}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="default: gpu-1b when a GPU is visible, else cpu-tiny")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant (the spread of the ratios)")
    parser.add_argument("--examples", type=int, help="override the preset's number of chats (a quicker run)")
    parser.add_argument("--model", help="an already built model directory of the preset's shape (default: build it)")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    preset_name = args.preset or ("gpu-1b" if torch.cuda.is_available() else "cpu-tiny")
    preset = PRESETS[preset_name]
    if args.worker:
        print("RESULT " + json.dumps(run_one(args.worker, args.model_dir, args.data, preset)))
        return

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine()} (before)")
    peak, peak_how = measured_peak()
    print(f"peak: {flop_rate(peak)} measured ({peak_how})", flush=True)
    from mlit.files import write_jsonl
    from mlit.model.tiny import build_base_model

    work = Path(tempfile.mkdtemp(prefix="mlit-bench-"))
    corpus = [str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl") for lang in ("EN", "DE", "FR", "IT", "ES")]
    model_dir = Path(args.model) if args.model else work / "model"
    if not args.model:
        build_base_model(preset["model"], corpus, model_dir)
    chats = synthetic_chats(args.examples or preset["examples"])
    write_jsonl(work / "train.jsonl", chats)
    runs: dict[str, list[dict]] = {variant: [] for variant in args.variants}
    for repeat in range(args.repeats):  # interleaved: a load change hits every variant alike
        for variant in args.variants:
            command = [sys.executable, __file__, "--preset", preset_name, "--worker", variant, "--model-dir",
                       str(model_dir), "--data", str(work / "train.jsonl")]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not line:
                raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
            result = json.loads(line[0][len("RESULT "):])
            result["mfu"] = result["flops_per_s"] / peak
            runs[variant].append(result)
            print(f"repeat {repeat + 1}/{args.repeats} {variant}: {result['tokens_per_s']:.0f} tokens/s", flush=True)
    first = runs[args.variants[0]][0]
    print(f"\ntraining throughput, preset {preset_name} ({first['parameters']:,} parameters), {len(chats)} chats, "
          f"one epoch, {args.repeats} repeats; peak {flop_rate(peak)} ({peak_how})")
    print(f"\n{'setting':28}" + "".join(f"{v:>18}" for v in args.variants))
    for key in SHOWN:
        print(f"{key:28}" + "".join(f"{runs[v][0]['settings'][key]:>18}" for v in args.variants))
    print(f"\n{'variant':17} {'tokens/s':>9} {'MFU':>6} {'steps':>6} {'tokens':>8} {'wall s':>7} {'peak GiB':>9} "
          f"{'final loss':>10}  {'vs paper':>20}  {'vs trl_defaults':>20}")
    summary = {}
    for variant in args.variants:
        rs = runs[variant]
        median = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        ratios = {ref: [r["tokens_per_s"] / b["tokens_per_s"] for r, b in zip(rs, runs[ref])]
                  for ref in ("paper", "trl_defaults") if ref in runs}
        loss = median("final_loss") if all(r["final_loss"] is not None for r in rs) else float("nan")
        print(f"{variant:17} {median('tokens_per_s'):9.0f} {median('mfu'):6.1%} {rs[0]['steps']:6d} "
              f"{rs[0]['tokens_seen']:8d} {median('wall_s'):7.1f} {median('peak_memory_gib'):9.2f} {loss:10.3f}  "
              + "  ".join(f"{spread(ratios[ref]) if ref in ratios else '-':>20}" for ref in ("paper", "trl_defaults")))
        summary[variant] = {"tokens_per_s": median("tokens_per_s"), "mfu": median("mfu"),
                            "ratios": ratios, "final_loss": loss, "runs": rs}
    print("ratios: median over the repeats of run i / reference run i (min-max); MFU against the measured peak")
    print(f"machine: {machine()} (after)")
    if args.out:
        Path(args.out).write_text(json.dumps({"preset": preset_name, "peak_flops": peak, "peak": peak_how,
                                              "variants": summary}, indent=2))


if __name__ == "__main__":
    main()
