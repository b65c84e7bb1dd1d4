"""Resumable training state: a staging directory per run, its fingerprint, and the last complete
checkpoint in it. A run only resumes from checkpoints written by the same experiment."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from mlit.files import write_json
from mlit.model.publish import staging_dir  # noqa: F401  (where a run writes until it is complete)
from mlit.safe_paths import remove_tree

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
INCOMPLETE_MARKER = "checkpoint-is-incomplete.txt"
RUN_FILE = "run.json"


def run_fingerprint(base_model: str, data_sha256: str, settings: dict, seed: int, world_size: int) -> str:
    """Hash of what a checkpoint depends on: the experiment settings (the train rule's params, see
    mlit.run_settings), plus the checkpoint's format: world size and DeepSpeed config (ZeRO optimizer
    shards are saved per rank and stage, and load only into the same layout)."""
    from mlit.run_settings import experiment_part

    learned = experiment_part("training", settings)
    payload = json.dumps({"base_model": base_model, "data_sha256": data_sha256, "settings": learned, "seed": seed,
                          "world_size": world_size, "deepspeed": settings.get("deepspeed")}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def prepare_staging(tmp: Path, fingerprint: str) -> str:
    """Keep ``tmp`` if it belongs to the same run (so its checkpoints are resumed), else start clean.
    Returns what happened, for the log."""
    run_file = tmp / RUN_FILE
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text()).get("fingerprint")
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous == fingerprint:
            return "kept"
        remove_tree(tmp)
        outcome = "discarded (different run)"
    elif tmp.exists():
        remove_tree(tmp)
        outcome = "discarded (no run file)"
    else:
        outcome = "new"
    tmp.mkdir(parents=True)
    write_json(run_file, {"fingerprint": fingerprint})
    return outcome


def last_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The checkpoint with the highest step that was completely written: the trainer state is saved
    last, so a checkpoint without it (or with an incomplete marker) was cut off and is skipped."""
    if not checkpoint_dir.is_dir():
        return None
    candidates = []
    for path in checkpoint_dir.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / "trainer_state.json").exists() \
                and not (path / INCOMPLETE_MARKER).exists():
            candidates.append((int(match.group(1)), path))
    return max(candidates)[1] if candidates else None
