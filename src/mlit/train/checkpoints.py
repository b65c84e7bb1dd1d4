"""Resumable training state: a staging directory per run, its fingerprint, and the last complete
checkpoint in it. A run only resumes from checkpoints written by the same experiment, and only from one
whose files load: a damaged newest checkpoint (a truncated model.safetensors) is set aside, named in the
log, and the one before it is resumed."""

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
    """Hash of what a checkpoint depends on: the experiment settings (the train rule's params: the config's
    training recipe), plus the checkpoint's format: world size and DeepSpeed config (ZeRO optimizer
    shards are saved per rank and stage, and load only into the same layout)."""
    from mlit.settings import experiment_part

    learned = experiment_part("training", settings)
    payload = json.dumps({"base_model": base_model, "data_sha256": data_sha256, "settings": learned, "seed": seed,
                          "world_size": world_size, "deepspeed": settings["deepspeed"]}, sort_keys=True)
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
    candidates = _candidates(checkpoint_dir)
    return candidates[0][1] if candidates else None


def _candidates(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    if not checkpoint_dir.is_dir():
        return []
    found = []
    for path in checkpoint_dir.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / "trainer_state.json").exists() \
                and not (path / INCOMPLETE_MARKER).exists():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def checkpoint_damage(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be loaded, or None: each safetensors file's header and length (the
    library's own check), each torch file's zip directory (torch.save's format: at the end of the file,
    so a cut-off file has none) and each JSON file are read; the tensors are not."""
    import zipfile

    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        name = path.relative_to(checkpoint)
        try:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt"):
                    pass
            elif path.suffix in (".pt", ".bin", ".pth"):
                with zipfile.ZipFile(path):
                    pass
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
        except Exception as error:  # noqa: BLE001 (any reader error: the file is damaged)
            return f"{name}: {type(error).__name__}: {error}"
    return None


def set_aside_damaged_checkpoints(checkpoint_dir: Path, log=print) -> list[str]:
    """From the newest complete checkpoint down: one that does not load is renamed ``damaged-<name>``
    (out of the trainer's sight and rotation, kept for a look) with a log line naming it and why, until
    one loads. Returns the names set aside. Run on the main process before the others look."""
    set_aside = []
    for _, path in _candidates(checkpoint_dir):
        damage = checkpoint_damage(path)
        if damage is None:
            break
        target = path.with_name(f"damaged-{path.name}")
        remove_tree(target)
        path.rename(target)
        set_aside.append(path.name)
        log(f"{path} does not load ({damage}); set aside as {target.name}, resuming from an older checkpoint "
            "if there is one", flush=True)
    return set_aside
