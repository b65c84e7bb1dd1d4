"""Answer generation throughput, like with like: the same model, MT-Bench-X questions, settings and
new-token count rule for every run. Each run answers both turns of the questions, twice in one
process (same loaded model / engine): with natural answer lengths (each answer ends where the model
ends it, as in a real job) and with forced lengths (every answer runs to max_new_tokens: equal work
per request, the figure earlier versions of this benchmark gave alone). Runs:

- hf one-at-a-time: FastChat gen_model_answer's way (batch 1, dynamic cache), on the first N questions
- hf batched: the hf backend (batches of --batch-size per temperature, static cache, not compiled)
- vllm one-at-a-time: one prompt per engine call, on the first N questions
- vllm batch loop: --batch-size prompts per engine call (the backend's old loop)
- vllm whole-turn: every prompt of a turn (all questions and languages) in one engine call (the default)

New tokens per second are counted after model load / engine start-up (reported separately).

    python bench/generate_throughput.py                       # CPU: the demo's tiny model, fine-tuned briefly
    python bench/generate_throughput.py --model DIR --max-new-tokens 256 --langs DE FR

The default model is the demo's tiny Llama fine-tuned for a few epochs on the demo instructions, so
that it ends its answers (a random model never does, and natural lengths would equal forced ones).
vLLM runs in its own environment (.venv-vllm, `make setup-vllm`); it is skipped if that is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

RUNS = [  # name, backend, submission, batch size (None: --batch-size), one-at-a-time question limit
    ("hf one-at-a-time", "hf", "batch", 1, True),
    ("hf batched", "hf", "batch", None, False),
    ("vllm one-at-a-time", "vllm", "batch", 1, True),
    ("vllm batch loop", "vllm", "batch", None, False),
    ("vllm whole-turn", "vllm", "turn", None, False),
]


def answer(generator, submission: str, langs: list[str], limit: int | None, forced: bool, max_new_tokens: int) -> dict:
    from mlit.data.mtbench import load_questions
    from mlit.generate.answers import answer_questions, answer_whole_turns

    generator.min_new_tokens = max_new_tokens if forced else 0
    generator.generated_tokens = 0
    calls = getattr(generator, "engine_calls", 0)
    out = Path(tempfile.mkdtemp(prefix="gen-bench-"))
    tasks = [(lang, load_questions(REPO / "data" / "mt_bench_x", lang)[:limit], out / f"{lang}.jsonl")
             for lang in langs]
    quiet = lambda *_: None  # noqa: E731
    started = time.perf_counter()
    if submission == "turn":
        questions = sum(len(rows) for rows in answer_whole_turns(generator, tasks, "bench", 1, log=quiet).values())
    else:
        questions = sum(len(answer_questions(generator, qs, path, "bench", 1, log=quiet, lang=lang))
                        for lang, qs, path in tasks)
    wall = time.perf_counter() - started
    return {"questions": questions, "new_tokens": generator.generated_tokens, "wall_s": wall,
            "tokens_per_s": generator.generated_tokens / wall,
            "engine_calls": getattr(generator, "engine_calls", 0) - calls or None}


def worker(backend: str, submission: str, batch_size: int, model: str, langs: list[str], limit: int | None,
           max_new_tokens: int) -> dict:
    from mlit.generate.answers import make_generator

    # the one-at-a-time baseline is plain `model.generate` (transformers' default dynamic cache)
    import torch

    cuda = torch.cuda.is_available()  # vLLM on a GPU: the model's dtype and most of the memory
    settings = {"backend": backend, "max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": 1,
                "vllm_dtype": "auto" if cuda else "float32", "vllm_submission": submission,
                "vllm_gpu_memory_utilization": 0.85 if cuda else 0.2,
                "hf_cache": "dynamic" if batch_size == 1 else "static"}
    started = time.perf_counter()
    generator = make_generator(model, settings, log=lambda *_: None)
    load_s = time.perf_counter() - started
    return {"backend": backend, "batch_size": batch_size, "load_s": load_s,
            "natural": answer(generator, submission, langs, limit, False, max_new_tokens),
            "forced": answer(generator, submission, langs, limit, True, max_new_tokens)}


def default_model(work: Path, epochs: int = 3) -> str:
    """The demo's tiny Llama, fine-tuned briefly on the demo instructions so that it ends its answers."""
    from mlit.files import read_jsonl, write_jsonl
    from mlit.model.tiny import build_base_model
    from mlit.train.sft import train

    langs = ("EN", "DE", "FR", "IT", "ES")
    corpus = [str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl") for lang in langs]
    build_base_model({}, corpus, work / "tiny")
    rows = [{"messages": [{"role": "user", "content": (row["instruction"] + "\n" + row["input"]).strip()},
                          {"role": "assistant", "content": row["output"]}]}
            for path in corpus for row in read_jsonl(Path(path))[:64]]
    write_jsonl(work / "train.jsonl", rows)
    train(str(work / "tiny"), str(work / "train.jsonl"), work / "tuned",
          {"learning_rate": 2e-3, "num_train_epochs": epochs, "per_device_train_batch_size": 16, "effective_batch_size": 16, "max_length": 256, "logging_steps": 50,
           "save_steps": 10**6, "lr_scheduler_type": "constant"}, seed=0)
    return str(work / "tuned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the demo's tiny model, fine-tuned here)")
    parser.add_argument("--langs", nargs="+", default=["EN"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="the batched runs' batch (the config's batch_size)")
    parser.add_argument("--one-at-a-time-questions", type=int, default=16,
                        help="one-at-a-time is slow: time it on the first N questions (rates compare per token)")
    parser.add_argument("--tune-epochs", type=int, default=3,
                        help="epochs of the default model's fine-tuning (20 steps each; without --model)")
    parser.add_argument("--only", nargs="+", help="run only these runs (names as printed, e.g. 'vllm whole-turn')")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (the spread of the ratios)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backend, submission, batch, model, limit = args.worker
        result = worker(backend, submission, int(batch), model, args.langs, int(limit) or None, args.max_new_tokens)
        print("RESULT " + json.dumps(result))
        return

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine()} (before)", flush=True)
    model = args.model or default_model(Path(tempfile.mkdtemp(prefix="gen-bench-")), args.tune_epochs)
    vllm_python = REPO / ".venv-vllm" / "bin" / "python"
    if not vllm_python.exists():
        print("(no .venv-vllm: vLLM skipped; make setup-vllm)")
    runs = [run for run in RUNS if not (args.only and run[0] not in args.only)
            and not (run[1] == "vllm" and not vllm_python.exists())]
    results: dict[str, list[dict]] = {run[0]: [] for run in runs}
    for repeat in range(args.repeats):  # interleaved: a load change hits every run alike
        for name, backend, submission, batch, one_at_a_time in runs:
            python = str(vllm_python) if backend == "vllm" else sys.executable
            command = [python, __file__, "--langs", *args.langs, "--max-new-tokens", str(args.max_new_tokens),
                       "--worker", backend, submission, str(batch or args.batch_size), model,
                       str(args.one_at_a_time_questions if one_at_a_time else 0)]
            done = subprocess.run(command, capture_output=True, text=True)
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode or not line:
                raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
            results[name].append(json.loads(line[0][len("RESULT "):]))
            print(f"done: repeat {repeat + 1}/{args.repeats} {name}", flush=True)
    print(f"\ngeneration throughput, MT-Bench-X {' '.join(args.langs)}, both turns, max_new_tokens "
          f"{args.max_new_tokens}, batch size {args.batch_size}, model {model}, {args.repeats} repeats")
    header = f"{'run':20} {'batch':>5} {'questions':>9} {'engine calls':>12} {'load s':>7}"
    print(f"{header} | natural: {'tokens':>7} {'wall s':>7} {'tok/s':>7} {'x (min-max)':>19} | forced: {'tokens':>7} "
          f"{'wall s':>7} {'tok/s':>7} {'x (min-max)':>19}")
    base = results[runs[0][0]] if runs else []
    for name, rs in results.items():
        natural = rs[0]["natural"]
        calls = natural["engine_calls"] if natural["engine_calls"] is not None else "-"
        cells = []
        for kind in ("natural", "forced"):
            rates = [r[kind]["tokens_per_s"] for r in rs]
            ratios = [r[kind]["tokens_per_s"] / b[kind]["tokens_per_s"] for r, b in zip(rs, base)]
            cells.append(f"{kind}: {rs[0][kind]['new_tokens']:7d} {statistics.median(r[kind]['wall_s'] for r in rs):7.1f} "
                         f"{statistics.median(rates):7.0f} {statistics.median(ratios):6.1f}x ({min(ratios):.1f}-{max(ratios):.1f})")
        print(f"{name:20} {rs[0]['batch_size']:5d} {natural['questions']:9d} {calls!s:>12} "
              f"{statistics.median(r['load_s'] for r in rs):7.1f} | " + " | ".join(f"{c:>46}" for c in cells))
    print(f"x: tokens/s against the first run ({runs[0][0] if runs else '-'}) of the same repeat, median (min-max) "
          "over the repeats; engine calls: vLLM calls with natural lengths; tokens: the first repeat's")
    print(f"machine: {machine()} (after)")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


if __name__ == "__main__":
    main()
