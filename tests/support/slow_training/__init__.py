"""The slow-training test hook (``sitecustomize.py`` here): ``environment(...)`` is the environment of a
training command whose every checkpoint takes ``checkpoint_delay_s`` seconds more and whose every
training step (each micro-batch of each process) takes ``step_delay_s`` seconds more, so that a test can
signal a short run in its middle."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def environment(checkpoint_delay_s: float = 0, step_delay_s: float = 0, env: dict | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["MLIT_TEST_CHECKPOINT_DELAY_S"] = str(checkpoint_delay_s)
    env["MLIT_TEST_STEP_DELAY_S"] = str(step_delay_s)
    return env
