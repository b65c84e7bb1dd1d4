"""``accelerate launch`` whose torch elastic agent gives its workers time to checkpoint on SIGTERM.

On SIGTERM the agent (torch.distributed.elastic) sends SIGTERM to its workers and SIGKILLs them after
``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` seconds (default 30; mlit.train.launch sets it from
``launch.training.checkpoint_grace_s``). A second SIGTERM during that wait would raise out of the wait and
end the agent at once: under Slurm the agent gets the signal twice (Slurm signals every process of
the step, and mlit's launcher forwards it). So here the agent handles the first SIGTERM (or SIGINT,
...) and ignores repeats; the workers still get every signal they are sent.

    python -m mlit.train.elastic_launch <accelerate launch arguments>
"""

from __future__ import annotations

import signal
import sys


def handle_first_signal_only() -> None:
    """Wrap torch elastic's termination handler (registered by name when the workers start) so that
    it ignores later signals of the same kind once it has begun shutting the workers down."""
    from torch.distributed.elastic.multiprocessing import api

    original = api._terminate_process_handler
    if getattr(original, "first_only", False):
        return

    def first_only(signum, frame):
        signal.signal(signum, signal.SIG_IGN)  # the shutdown below must not be interrupted
        original(signum, frame)

    first_only.first_only = True
    api._terminate_process_handler = first_only


def main(argv: list[str]) -> None:
    handle_first_signal_only()
    from accelerate.commands.launch import main as accelerate_main

    sys.argv = ["accelerate-launch", *argv]
    accelerate_main()


if __name__ == "__main__":
    main(sys.argv[1:])
