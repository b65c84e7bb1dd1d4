"""The GPU check's rehearsal (bench/gpu_rehearsal.py): an environment holding only the GPU machine's
packages (bench/gpu_machine_packages.txt), the carried wheel folder installed by the check's own command,
then the check's CPU mode. Slow (minutes; the environment is cached in .rehearsal/ between runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import gpu_rehearsal  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rehearsal_root():
    return gpu_rehearsal.prepare()


def check(root, wheels=None, timeout=1500):
    return subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], env=gpu_rehearsal.check_environment(root, wheels),
                          capture_output=True, text=True, timeout=timeout)


def test_the_carried_set_runs_the_check_on_the_machines_packages(rehearsal_root):
    result = check(rehearsal_root)
    output = result.stdout + result.stderr
    print(result.stdout[-30000:], result.stderr[-3000:])
    assert result.returncode == 0, output[-6000:]
    versions = output.split("=== ")[2]  # the versions stage
    assert "transformers                     5.24.0  carried" in versions  # shadows the machine's 5.17
    assert "accelerate                       1.15.0  machine" in versions
    assert "PROBLEM" not in output and "polars" not in versions
    assert "zero3: 2 steps" in output and "parameters saved and checked" in output
    for variant in ("paper", "no_checkpointing", "packed_flex", "group_by_length", "trl_defaults"):
        assert f"train {variant}" in output
    summary = result.stdout.split("s] summary")[1]
    assert "nan" not in summary, summary
    assert "vs trl_defaults" in output and "generate | hf batched" in output


def test_a_package_missing_from_the_carried_set_fails_the_check(rehearsal_root, tmp_path):
    wheels = tmp_path / "wheels"
    shutil.copytree(rehearsal_root / "wheels", wheels)
    for name in ("trl-*", "transformers-*"):  # missing on the machine; too old on the machine
        for path in wheels.glob(name):
            path.unlink()
    result = check(rehearsal_root, wheels, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "PROBLEM trl: needed by the check but not installed" in output
    assert "PROBLEM transformers: 5.17.0 does not satisfy the project's <6,>=5.20" in output
