"""Start and stop a local OpenAI-compatible server (``transformers serve``) for the demo judge."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _transformers_cli() -> str:
    candidate = Path(sys.executable).parent / "transformers"
    return str(candidate) if candidate.exists() else "transformers"


@contextlib.contextmanager
def serve(model_dir: str, log_path: str | Path, startup_timeout_s: float = 300.0) -> Iterator[str]:
    """Serve ``model_dir`` on a free loopback port; yields the base URL (``.../v1``)."""
    port = free_port()
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [_transformers_cli(), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu" if not _cuda() else "auto", "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log_path.open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"judge server exited with {process.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"judge server did not answer on port {port} in {startup_timeout_s:.0f} s; "
                                   f"see {log_path}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
