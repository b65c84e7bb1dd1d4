"""What a local checkpoint directory (``base_models[].path``) holds, compact enough to record and
compare at every Snakemake start: the hash of each small file (config.json, the weight index,
generation and tokenizer configs) and the size and modification time of each large one (the weights).
A checkpoint changed in place after it was prepared then differs from what ``mlit_base.json`` recorded.
"""

from __future__ import annotations

from pathlib import Path

from mlit.files import sha256_file

HASHED_BELOW_BYTES = 1 << 20  # config.json, model.safetensors.index.json, tokenizer_config.json, ...


def checkpoint_fingerprint(model_dir: str | Path) -> dict[str, str]:
    """``{file name: "sha256:<hex>" | "size:<bytes> mtime_ns:<ns>"}`` of the directory's top-level
    regular files (hidden files left out)."""
    entries = {}
    for path in sorted(Path(model_dir).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        info = path.stat()
        if info.st_size < HASHED_BELOW_BYTES:
            entries[path.name] = "sha256:" + sha256_file(path)
        else:
            entries[path.name] = f"size:{info.st_size} mtime_ns:{info.st_mtime_ns}"
    return entries


def changed_files(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """Names of the files added, removed or changed between two fingerprints."""
    return sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))
