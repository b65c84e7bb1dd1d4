"""Checks a config must pass before anything else looks at it (the schema, the grid): fast and bounded.

- ``check_values``: a YAML alias bomb (a few lines that expand to billions of values) is refused after a
  bounded walk, before jsonschema would build an error message of its expanded text; a number that is NaN
  or infinite is refused naming its key (a schema's ``minimum`` does not catch NaN).
- ``regular_file``: a file the config check reads (a dataset file, a chat template) must be a regular
  file below a size limit: a FIFO would hang the check and ``/dev/zero`` fill the memory, even for ``-n``.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path

MAX_VALUES = 100_000  # the study's grid has about 300 values; an alias bomb has billions
MAX_CONFIG_FILE_BYTES = 4 << 30  # a dataset file of one language (Bactrian-X: about 100 MB)


class ConfigValueError(ValueError):
    """A config value (or a file it names) that no check should read further."""


def key_of(path: tuple) -> str:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return where.removeprefix(".") or "config"


def check_values(config, max_values: int = MAX_VALUES) -> None:
    """Walk the config as loaded (aliases are shared objects, each use counted): refuse more than
    ``max_values`` values and any non-finite number, naming its key."""
    stack = [((), config)]
    seen = 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > max_values:
            raise ConfigValueError(
                f"config: more than {max_values} values once its YAML aliases (&/*) are expanded, near "
                f"{key_of(path)}; an alias bomb? write the values out instead of nesting aliases")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigValueError(f"{key_of(path)}: {value} is not a finite number; give a number such as 2e-5")
        if isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend(((*path, index), item) for index, item in reversed(list(enumerate(value))))


def regular_file(path: str | Path, key: str, max_bytes: int = MAX_CONFIG_FILE_BYTES) -> Path:
    """``path`` if it is a regular file (after symlinks) of at most ``max_bytes``; else ConfigValueError
    naming ``key``. Only ``stat``: nothing is opened, so a FIFO or a device cannot block or flood."""
    path = Path(path)
    try:
        mode = path.stat()
    except OSError as error:
        raise ConfigValueError(f"{key}: {path} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode.st_mode):
        kind = "a directory" if stat.S_ISDIR(mode.st_mode) else "a FIFO" if stat.S_ISFIFO(mode.st_mode) else \
            "a device" if stat.S_ISCHR(mode.st_mode) or stat.S_ISBLK(mode.st_mode) else "not a regular file"
        raise ConfigValueError(f"{key}: {path} is {kind}; give a regular file")
    if mode.st_size > max_bytes:
        raise ConfigValueError(f"{key}: {path} has {mode.st_size} bytes, more than the {max_bytes} a config "
                               "check reads; split it or check its path")
    return path
