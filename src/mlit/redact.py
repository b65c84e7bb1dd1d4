"""Redaction of secrets from error text before it is logged, printed, raised or stored.

An endpoint may echo the request's API key in its error body; such a body must never reach a log,
a judgment row or a cache entry. ``redact`` removes the values of the named key variables and any
``Bearer <token>`` or ``sk-...``-shaped token.
"""

from __future__ import annotations

import json
import os
import re

MASK = "[REDACTED]"
BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/-]+=*")  # RFC 6750's token characters
SK_TOKEN = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
MIN_SECRET_LENGTH = 4  # shorter values are no secret, and masking them would garble the message


def secret_values(*env_names: str) -> list[str]:
    """The values of the environment variables ``env_names`` (and OPENAI_API_KEY, the client's default)."""
    names = dict.fromkeys((*env_names, "OPENAI_API_KEY"))
    return [value for name in names if (value := os.environ.get(name, "").strip())]


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every value in ``secrets`` and every bearer / sk- token replaced by [REDACTED]."""
    forms = {form for secret in secrets if len(secret) >= MIN_SECRET_LENGTH
             for form in (secret, json.dumps(secret)[1:-1])}  # as sent, and as escaped in a JSON body
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    text = BEARER.sub(lambda match: f"{match.group(1)} {MASK}", text)
    return SK_TOKEN.sub(MASK, text)
