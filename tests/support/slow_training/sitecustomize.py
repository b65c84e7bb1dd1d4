"""Test hook, outside the product: with ``MLIT_TEST_CHECKPOINT_DELAY_S`` set, every checkpoint a
transformers Trainer writes takes that many seconds more (as a large ZeRO checkpoint takes minutes), to
show that a SIGTERM save survives the launcher's kill grace.

Python imports this ``sitecustomize`` at start-up when this directory is on ``PYTHONPATH``
(``support.slow_checkpoint.environment``); the training processes that ``accelerate launch`` starts inherit
it. ``Trainer._save_checkpoint`` is wrapped when ``transformers.trainer`` is first imported."""

import importlib.abc
import importlib.util
import os
import sys
import time

ENV = "MLIT_TEST_CHECKPOINT_DELAY_S"


def _patch(trainer_module) -> None:
    delay_s = float(os.environ[ENV])
    original = trainer_module.Trainer._save_checkpoint

    def slow_save(self, *args, **kwargs):
        print(f"{ENV}: checkpoint of step {self.state.global_step} takes {delay_s:.0f} s more", flush=True)
        time.sleep(delay_s)
        return original(self, *args, **kwargs)

    trainer_module.Trainer._save_checkpoint = slow_save


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


if os.environ.get(ENV):
    sys.meta_path.insert(0, _PatchOnImport())
