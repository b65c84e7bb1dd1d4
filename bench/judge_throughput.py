"""Judge throughput against a local OpenAI-protocol server with a fixed latency per request, for
several --parallel values, and the number of requests a rerun sends (the cache: must be 0).

    python bench/judge_throughput.py                      # 200 ms per request, 160 requests
    python bench/judge_throughput.py --latency 0.5 --requests 400 --parallel 1 8 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # tests/support: the scripted server

from mlit.judge.client import JudgeCache, JudgeSettings, judge_all  # noqa: E402
from mlit.judge.prompts import JudgeRequest  # noqa: E402
from support.scripted_server import OpenAIServer  # noqa: E402  (a real HTTP server, scripted replies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    args = parser.parse_args()

    def slow(request, attempt):
        return ("slow", args.latency, "Fine. Rating: [[7]]")

    print(f"judge throughput, {args.requests} requests, server latency {args.latency * 1000:.0f} ms")
    print(f"{'parallel':>8} {'req/s':>8} {'wall s':>7} {'speed-up':>8} {'rerun requests':>15}")
    baseline = None
    with OpenAIServer(slow) as server:
        for parallel in args.parallel:
            requests = [JudgeRequest(question_id=f"q{parallel}-{i}", turn=1, category="writing",
                                     prompt_name="single-v1", system_prompt="You are a judge.",
                                     user_prompt=f"request {i} of run {parallel}") for i in range(args.requests)]
            settings = JudgeSettings.from_config({"model": "bench-judge", "parallel": parallel}, server.base_url)
            cache = JudgeCache(tempfile.mkdtemp(prefix="mlit-judge-bench-"))
            before = len(server.requests)
            started = time.perf_counter()
            results = judge_all(requests, settings, cache, desc=f"parallel {parallel}")
            wall = time.perf_counter() - started
            assert all(r["error"] is None for r in results)
            sent = len(server.requests) - before
            judge_all(requests, settings, cache, desc="rerun")
            rerun = len(server.requests) - before - sent
            rate = args.requests / wall
            baseline = baseline or rate
            print(f"{parallel:8d} {rate:8.1f} {wall:7.2f} {rate / baseline:7.1f}x {rerun:15d}")


if __name__ == "__main__":
    main()
