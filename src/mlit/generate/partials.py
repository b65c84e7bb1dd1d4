"""Which partial answers a generate job may resume: only those of the same model, prompts and
generation settings.

A killed job leaves ``<lang>.jsonl.partial`` (and ``.turn1.partial``); beside them
``<lang>.jsonl.partial.fingerprint`` says what produced them: the model directory's files
(``mlit.model.fingerprint``: the hash of small files such as train_info.json and config.json, the size and
modification time of the weights), the questions of the language, the model id and the experiment part of
the generation settings. A rerun with another fingerprint (a retrained model, a changed
``generation.*``) discards the partial files with a log line instead of mixing answers of two settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlit.files import atomic_write_text

SUFFIXES = (".partial", ".turn1.partial")
FINGERPRINT_SUFFIX = ".partial.fingerprint"


def answers_fingerprint(model_dir: str | Path, settings: dict, lang: str, questions: list[dict],
                        model_id: str) -> str:
    from mlit.model.fingerprint import checkpoint_fingerprint
    from mlit.settings import experiment_part

    payload = {"model": checkpoint_fingerprint(model_dir), "model_id": model_id, "lang": lang,
               "questions": questions, "settings": experiment_part("generation", settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _sidecar(out_path: Path, suffix: str) -> Path:
    return out_path.with_name(out_path.name + suffix)


def keep_matching_partials(out_path: Path, fingerprint: str, log=print) -> None:
    """Discard ``out_path``'s partial files unless they were written under ``fingerprint`` (a partial file
    without a fingerprint file is of unknown origin: discarded too); then record ``fingerprint`` for the
    answers this job appends."""
    fingerprint_file = _sidecar(out_path, FINGERPRINT_SUFFIX)
    partials = [path for path in (_sidecar(out_path, suffix) for suffix in SUFFIXES) if path.exists()]
    recorded = fingerprint_file.read_text(encoding="utf-8").strip() if fingerprint_file.is_file() else None
    if partials and recorded != fingerprint:
        for path in partials:
            path.unlink()
        log(f"discarding {', '.join(p.name for p in partials)} in {out_path.parent}: written by "
            f"{'an unknown run' if recorded is None else f'another model, prompts or generation settings ({recorded})'}"
            f", not this job's ({fingerprint}); answering every question again")
    atomic_write_text(fingerprint_file, fingerprint + "\n")


def finish(out_path: Path) -> None:
    """The answers file is complete: its fingerprint file goes with the partial files."""
    _sidecar(out_path, FINGERPRINT_SUFFIX).unlink(missing_ok=True)
