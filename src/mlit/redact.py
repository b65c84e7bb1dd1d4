"""Redaction of secrets from error text before it is logged, printed, raised or stored.

An endpoint may echo the request's API key in its error body; such a body must never reach a log,
a judgment row or a cache entry. ``redact`` removes the values of the named key variables and any
``Bearer <token>`` or ``sk-...``-shaped token.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

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


# launch.judge.api_key_env names a variable; a value of another shape is likely the key itself, pasted there
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# query parameters that carry a credential (api-key=, access_token=, sig=, ...)
SECRET_PARAMETER = re.compile(r"(?i)key|token|secret|pass|pwd|auth|sig|credential|session|code")


def url_credentials(url: str) -> str | None:
    """What in ``url`` is a credential (``user:password@``, a query parameter like ``?api-key=``), or
    None. Such a URL would be stored in Snakemake's metadata and printed in logs and errors."""
    try:
        parts = urlsplit(url)
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "a user name or password (user:password@)"
    secret = [name for name in names if SECRET_PARAMETER.search(name)]
    if secret:
        return f"the query parameter {secret[0]!r}"
    return None


def url_without_credentials(url: str) -> str:
    """``url`` with its user info and query values replaced by [REDACTED] (for a message about it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc.rpartition("@")[2]
    netloc = f"{MASK}@{netloc}" if "@" in parts.netloc else netloc
    query = "&".join(f"{name}={MASK}" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_judge_endpoint(api_key_env, base_url) -> None:
    """Raise ValueError (naming the key, never the value) when ``launch.judge.api_key_env`` is not shaped like
    an environment variable name, or ``judge.base_url`` holds a credential: the key belongs in the
    variable, where no config, metadata, log or result file sees it."""
    if not isinstance(api_key_env, str) or not ENV_NAME.fullmatch(api_key_env):
        raise ValueError(
            "launch.judge.api_key_env: is not an environment variable name (capitals, digits and '_', not starting "
            "with a digit, e.g. OPENAI_API_KEY); it names the variable that holds the judge's key, and is not "
            "the key: export the key in a variable and give its name here (the value is not shown: it may be a key)")
    problem = url_credentials(base_url) if isinstance(base_url, str) else None
    if problem:
        raise ValueError(
            f"judge.base_url: {url_without_credentials(base_url)} holds a credential ({problem}); give the "
            f"endpoint without it and export the key in ${api_key_env} (launch.judge.api_key_env): the client sends it "
            "as a bearer token, and a URL is stored in Snakemake's metadata and printed in logs")
