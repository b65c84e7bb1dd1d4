"""Which items a stratified share draws: in every stratum, ``fraction`` of its items (at least one), those
with the smallest hash of (seed, item key). Deterministic given the seed, independent of the items' order,
and a stratum's draw does not depend on the other strata: adding a cell or a language to a grid leaves
the sample of the others as it was (their judgments stay in the judge cache). Pure: no I/O.

Used by the judge step for a further judge's share of the turns (``judges.<name>.share``) and by
``mlit.judges.sample`` for the cost of a sampled judge: the same items either way.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Callable, Iterable, TypeVar

Item = TypeVar("Item")


def per_stratum(size: int, fraction: float) -> int:
    """Items drawn from a stratum of ``size``: ``fraction`` of it rounded half up, at least one (none of none)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} is not in (0, 1]: the share of each stratum to draw")
    if size == 0:
        return 0
    return min(size, max(1, math.floor(fraction * size + 0.5)))


def rank_key(seed: int, item: tuple) -> str:
    """An item's place in its stratum's draw order: a hash of the seed and the item's key."""
    return hashlib.sha256(repr((seed, *map(str, item))).encode()).hexdigest()


def drawn(items: Iterable[Item], key: Callable[[Item], tuple], stratum: Callable[[Item], tuple], fraction: float,
          seed: int = 0) -> list[Item]:
    """The items a share ``fraction`` of each stratum draws, in their given order."""
    items = list(items)
    by_stratum: dict[tuple, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_stratum[stratum(item)].append(index)
    keep: set[int] = set()
    for indexes in by_stratum.values():
        ranked = sorted(indexes, key=lambda index: rank_key(seed, key(items[index])))
        keep.update(ranked[:per_stratum(len(indexes), fraction)])
    return [item for index, item in enumerate(items) if index in keep]
