"""Answer generation throughput: one question at a time (FastChat's gen_model_answer style), the
`hf` batched backend, and `vllm`, on the same model and MT-Bench-X questions with the same settings.
Prints new tokens per second (after model load / engine start-up, which is reported separately)
and the ratios against one-at-a-time.

    python bench/generate_throughput.py                       # CPU: the demo's tiny model
    python bench/generate_throughput.py --model DIR --max-new-tokens 256 --lang DE

vLLM runs in its own environment (.venv-vllm, `make setup-vllm`); it is skipped if that is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def worker(backend: str, batch_size: int, model: str, lang: str, limit: int | None, max_new_tokens: int) -> dict:
    # the one-at-a-time baseline is plain `model.generate` (transformers' default dynamic cache)
    from mlit.generate.answers import answer_questions, make_generator
    from mlit.data.mtbench import load_questions

    settings = {"backend": backend, "max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": 1,
                "vllm_dtype": "float32", "hf_cache": "dynamic" if batch_size == 1 else "static"}
    started = time.perf_counter()
    generator = make_generator(model, settings)
    generator.min_new_tokens = max_new_tokens  # every answer runs to max_new_tokens: equal work per backend
    load_s = time.perf_counter() - started
    questions = load_questions(REPO / "data" / "mt_bench_x", lang)[:limit]
    out = Path(tempfile.mkdtemp(prefix=f"gen-bench-{backend}-")) / f"{lang}.jsonl"
    started = time.perf_counter()
    rows = answer_questions(generator, questions, out, f"bench-{backend}", seed=1, log=lambda *_: None)
    wall = time.perf_counter() - started
    tokens = generator.generated_tokens
    return {"backend": backend, "batch_size": batch_size, "questions": len(rows), "new_tokens": tokens,
            "wall_s": wall, "tokens_per_s": tokens / wall, "load_s": load_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the demo's tiny model, built here)")
    parser.add_argument("--lang", default="EN")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=80)
    parser.add_argument("--one-at-a-time-questions", type=int, default=16,
                        help="one-at-a-time is slow: time it on the first N questions (rates compare per token)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backend, batch, model, limit = args.worker
        result = worker(backend, int(batch), model, args.lang, int(limit) or None, args.max_new_tokens)
        print("RESULT " + json.dumps(result))
        return

    model = args.model
    if model is None:
        from mlit.model.tiny import build_base_model

        model = str(Path(tempfile.mkdtemp(prefix="gen-bench-")) / "tiny")
        corpus = [str(REPO / "data" / "demo" / f"instructions_{lang}.jsonl") for lang in ("EN", "DE", "FR", "IT", "ES")]
        build_base_model({}, corpus, Path(model))  # random weights: every answer runs to max_new_tokens
    vllm_python = REPO / ".venv-vllm" / "bin" / "python"
    runs = [("one-at-a-time", sys.executable, "hf", 1, args.one_at_a_time_questions),
            ("hf batched", sys.executable, "hf", args.batch_size, 0)]
    if vllm_python.exists():
        runs.append(("vllm", str(vllm_python), "vllm", args.batch_size, 0))
    else:
        print("(no .venv-vllm: vLLM skipped; make setup-vllm)")
    results = []
    for name, python, backend, batch, limit in runs:
        command = [python, __file__, "--lang", args.lang, "--max-new-tokens", str(args.max_new_tokens),
                   "--worker", backend, str(batch), model, str(limit)]
        done = subprocess.run(command, capture_output=True, text=True)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            raise SystemExit(f"{name} failed:\n{done.stderr[-4000:]}")
        results.append((name, json.loads(line[0][len("RESULT "):])))
    base = results[0][1]["tokens_per_s"]
    print(f"\ngeneration throughput, MT-Bench-X {args.lang}, both turns, max_new_tokens {args.max_new_tokens}, "
          f"model {model}")
    print(f"{'backend':14} {'batch':>5} {'questions':>9} {'new tokens':>10} {'wall s':>7} {'tokens/s':>9} "
          f"{'vs one-at-a-time':>16} {'load s':>7}")
    for name, r in results:
        print(f"{name:14} {r['batch_size']:5d} {r['questions']:9d} {r['new_tokens']:10d} {r['wall_s']:7.1f} "
              f"{r['tokens_per_s']:9.0f} {r['tokens_per_s'] / base:15.1f}x {r['load_s']:7.1f}")


if __name__ == "__main__":
    main()
