"""Test hook, outside the product: with ``MLIT_TEST_CHECKPOINT_DELAY_S`` set, every checkpoint a
transformers Trainer writes takes that many seconds more (as a large ZeRO checkpoint takes minutes), to
show that a SIGTERM save survives the launcher's kill grace; with ``MLIT_TEST_STEP_DELAY_S`` set, every
training step takes that many seconds more and prints ``MLIT_TEST_STEP_DELAY_S: rank R starts step N``,
so that a test can signal a short run in its middle.

Python imports this ``sitecustomize`` at start-up when this directory is on ``PYTHONPATH``
(``support.slow_training.environment``); the training processes that ``accelerate launch`` starts (and
the jobs that Slurm starts, which inherit the submitting environment) inherit it. The ``Trainer`` methods
are wrapped when ``transformers.trainer`` is first imported."""

import importlib.abc
import importlib.util
import os
import sys
import time

CHECKPOINT_ENV = "MLIT_TEST_CHECKPOINT_DELAY_S"
STEP_ENV = "MLIT_TEST_STEP_DELAY_S"


def _delay(name: str) -> float:
    return float(os.environ.get(name) or 0)


def _patch(trainer_module) -> None:
    trainer = trainer_module.Trainer
    if _delay(CHECKPOINT_ENV) > 0:
        save = trainer._save_checkpoint

        def slow_save(self, *args, **kwargs):
            delay_s = _delay(CHECKPOINT_ENV)
            print(f"{CHECKPOINT_ENV}: checkpoint of step {self.state.global_step} takes {delay_s:.0f} s more",
                  flush=True)
            time.sleep(delay_s)
            return save(self, *args, **kwargs)

        trainer._save_checkpoint = slow_save
    if _delay(STEP_ENV) > 0:
        step = trainer.training_step

        def slow_step(self, *args, **kwargs):
            rank = os.environ.get("RANK", "0")
            print(f"{STEP_ENV}: rank {rank} starts step {self.state.global_step + 1}", flush=True)
            time.sleep(_delay(STEP_ENV))
            return step(self, *args, **kwargs)

        trainer.training_step = slow_step


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "transformers.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


if _delay(CHECKPOINT_ENV) > 0 or _delay(STEP_ENV) > 0:
    sys.meta_path.insert(0, _PatchOnImport())
