"""The slow-checkpoint test hook (``sitecustomize.py`` here): ``environment(delay_s)`` is the environment of a
training command whose every checkpoint takes ``delay_s`` seconds more."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def environment(delay_s: float, env: dict | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["MLIT_TEST_CHECKPOINT_DELAY_S"] = str(delay_s)
    return env
