"""Progress lines on the console while a job's output goes to its log (mlit.progress)."""

import io
import subprocess
import sys

from mlit.progress import Progress

SCRIPT = """
import os, subprocess, sys
from mlit.progress import Progress
from mlit.cli import main
progress = Progress("train cell1", 4, "optimizer steps", every_s=0)
for step in range(1, 5):
    progress.update(step, f"loss {1 / step:.2f}")
print("to the log")
# a child started after the console was taken does not get the variable (nor writes anywhere)
print("child sees", subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MLIT_PROGRESS_FD'))"],
                                   capture_output=True, text=True).stdout.strip())
"""


def test_a_rule_shell_gets_progress_on_the_console_and_everything_else_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    result = subprocess.run(["bash", "-c", f"MLIT_PROGRESS_FD=3 {sys.executable} -c \"$SCRIPT\" 3>&2 > {log} 2>&1"],
                            env={"SCRIPT": SCRIPT, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + log.read_text()
    lines = result.stderr.splitlines()
    assert lines[0] == "[train cell1] started: 4 optimizer steps"
    assert lines[1].startswith("[train cell1] 1/4 optimizer steps (25%), 0m00s, ~0m00s left, loss 1.00")
    assert lines[-1].startswith("[train cell1] 4/4 optimizer steps (100%)") and len(lines) == 5
    assert "to the log" in log.read_text() and "[train" not in log.read_text()
    assert "child sees None" in log.read_text()


def test_without_the_descriptor_nothing_is_written_and_lines_are_spaced_in_time():
    Progress("x", 3, "items").update(1)  # no MLIT_PROGRESS_FD: silent, no error
    now = [0.0]
    stream = io.StringIO()
    progress = Progress("judge c DE", 100, "requests", every_s=30, clock=lambda: now[0], stream=stream)
    for done, at in ((10, 5.0), (20, 31.0), (30, 40.0), (100, 50.0)):
        now[0] = at
        progress.update(done)
    assert stream.getvalue().splitlines() == [
        "[judge c DE] started: 100 requests",
        "[judge c DE] 20/100 requests (20%), 0m31s, ~2m04s left",  # 10 at 5 s: too soon after the start
        "[judge c DE] 100/100 requests (100%), 0m50s"]  # the end is always shown
