"""The study's languages and the language compositions of its instruction data."""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES: tuple[str, ...] = ("EN", "DE", "FR", "IT", "ES")
SAMPLED_SUFFIX = "_sampled"


@dataclass(frozen=True)
class Composition:
    """A language composition such as ``DE`` (monolingual), ``ENDEFRITES`` (parallel) or
    ``ENDEFRITES_sampled`` (one language per item, size-matched to a monolingual set)."""

    name: str
    languages: tuple[str, ...]
    sampled: bool

    @property
    def monolingual(self) -> bool:
        return len(self.languages) == 1


def parse_composition(name: str) -> Composition:
    """Parse a composition name; raise ValueError naming the problem and the allowed values."""
    allowed = f"concatenated language codes from {list(LANGUAGES)}, optionally ending in '{SAMPLED_SUFFIX}'"
    sampled = name.endswith(SAMPLED_SUFFIX)
    base = name[: -len(SAMPLED_SUFFIX)] if sampled else name
    if not base or len(base) % 2:
        raise ValueError(f"composition '{name}' is not {allowed} (e.g. 'DE', 'ENDEFRITES', 'DEFRITES_sampled')")
    languages = tuple(base[i : i + 2] for i in range(0, len(base), 2))
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        raise ValueError(f"composition '{name}' has unknown language(s) {unknown}; allowed: {list(LANGUAGES)}")
    if len(set(languages)) != len(languages):
        raise ValueError(f"composition '{name}' repeats a language")
    if sampled and len(languages) < 2:
        raise ValueError(f"composition '{name}': '{SAMPLED_SUFFIX}' needs at least two languages")
    return Composition(name=name, languages=languages, sampled=sampled)
