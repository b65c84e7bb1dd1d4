"""Judge calls through the ``openai`` client: on-disk cache, retries with backoff, failures recorded.

Every completion is cached on disk under a key of (judge model, prompt name, system prompt, user
prompt, sampling settings) with the raw reply, so a rerun pays nothing twice and parsing can be
redone without a call. A request that still fails after its retries is returned with its error and
not cached: the next run retries only the failures. The API key is read from the environment and
never written anywhere: every error text is redacted (``mlit.redact``) before it is stored or shown.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mlit.files import write_json
from mlit.judge.prompts import JudgeRequest
from mlit.redact import check_judge_endpoint, redact, secret_values


@dataclass(frozen=True)
class JudgeSettings:
    """What the client needs of a judge job's settings (``judge`` and ``launch.judge``); build it with
    ``from_config``, which takes the defaults from the schema (the one place they live)."""

    model: str
    base_url: str
    api_key_env: str
    temperature: float
    max_tokens: int
    parallel: int
    max_retries: int
    timeout_s: float
    retry_initial_s: float
    served_model: str | None = None  # the name the endpoint knows the model by, if not `model`

    def __post_init__(self):  # also for a hand-run `mlit judge --judge JSON` (the workflow's config is checked)
        check_judge_endpoint(self.api_key_env, self.base_url)

    @classmethod
    def from_config(cls, judge: dict, base_url: str | None = None, **overrides) -> "JudgeSettings":
        from mlit.settings import section_defaults

        judge = section_defaults("judge", judge)
        keys = ("model", "api_key_env", "temperature", "max_tokens", "parallel", "max_retries", "timeout_s",
                "retry_initial_s")
        values = {k: judge[k] for k in keys}
        values.update(overrides)
        return cls(base_url=base_url or judge["base_url"], **values)


class JudgeCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @staticmethod
    def key(settings: JudgeSettings, request: JudgeRequest, sample: int = 0) -> str:
        """Judge model, prompt name and text, sampling settings; sample k > 0 of a repeated judgment
        is its own entry (sample 0 keeps the single-judgment key, so raising `samples` reuses it)."""
        material = [settings.model, request.prompt_name, request.system_prompt, request.user_prompt,
                    settings.temperature, settings.max_tokens] + ([sample] if sample else [])
        return hashlib.sha256(json.dumps(material, ensure_ascii=False).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # a torn entry is re-requested
        if not isinstance(entry, dict) or not isinstance(entry.get("judgment"), str):
            return None  # not an entry this client wrote (a reply is a string): re-requested, never raised on
        return entry

    def put(self, key: str, entry: dict) -> None:
        write_json(self.path(key), entry)


class MissingAPIKeyError(RuntimeError):
    """A judge endpoint on another machine, and no key in the variable ``launch.judge.api_key_env`` names."""


def is_loopback(base_url: str) -> bool:
    """Whether ``base_url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(base_url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(settings: JudgeSettings) -> str:
    """The key from ``$launch.judge.api_key_env``. A local endpoint (vllm, transformers serve) may run without
    one ('EMPTY' is sent); any other endpoint without a key stops here, before a request is sent."""
    key = os.environ.get(settings.api_key_env, "").strip()
    if key:
        return key
    if is_loopback(settings.base_url):
        return "EMPTY"
    raise MissingAPIKeyError(
        f"the judge endpoint {settings.base_url} is not on this machine, but the variable "
        f"${settings.api_key_env} (named by launch.judge.api_key_env) is unset or empty; export the key in "
        f"${settings.api_key_env}, or set launch.judge.api_key_env to the variable that holds it. Nothing was sent.")


def make_client(settings: JudgeSettings):
    from openai import OpenAI

    from mlit.judge.deadline import http_client

    return OpenAI(base_url=settings.base_url, api_key=api_key(settings), max_retries=0, timeout=settings.timeout_s,
                  http_client=http_client(settings.base_url))


# A reply of judge.max_tokens tokens takes at most this many bytes of HTTP (a token of a few characters,
# each up to 6 bytes as a JSON \uXXXX escape, and the response's JSON around it): far more is no reply
REPLY_BYTES = 64 * 1024
REPLY_BYTES_PER_TOKEN = 256


def reply_limit_bytes(max_tokens: int) -> int:
    return REPLY_BYTES + REPLY_BYTES_PER_TOKEN * max_tokens


def judge_cost(prompt_tokens: float, completion_tokens: float, prices: dict | None) -> float | None:
    """The judge's cost of these tokens at ``launch.judge.prices_per_1k`` (``{prompt_per_1k, completion_per_1k}``,
    a missing one is free); None without prices (unknown, not free). The one cost function of the
    judge's estimate and spend (``mlit.judge.step``) and of the tables' ``judge_health`` cost column."""
    if not prices:
        return None
    return (prompt_tokens * prices.get("prompt_per_1k", 0.0)
            + completion_tokens * prices.get("completion_per_1k", 0.0)) / 1000


def redact_error(text: str, settings: JudgeSettings) -> str:
    """Error text with the key of ``$launch.judge.api_key_env`` and any bearer / sk- token removed."""
    return redact(text, secret_values(settings.api_key_env))


def retry_after_s(error: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header of an API error, if it has one."""
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def chat_messages(request: JudgeRequest) -> list[dict]:
    messages = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    messages.append({"role": "user", "content": request.user_prompt})
    return messages


def _retrying_call(client, settings: JudgeSettings):
    import openai
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    backoff = wait_exponential_jitter(multiplier=settings.retry_initial_s, max=60)

    def wait(state) -> float:
        server_says = retry_after_s(state.outcome.exception())
        return min(server_says, 120.0) if server_says is not None else backoff(state)

    retryable = (openai.RateLimitError, openai.APIConnectionError, openai.APITimeoutError,
                 openai.InternalServerError)

    @retry(retry=retry_if_exception_type(retryable), stop=stop_after_attempt(settings.max_retries + 1),
           wait=wait, reraise=True)
    def call(request: JudgeRequest, sample: int = 0):
        from mlit.judge.deadline import request_budget

        extra = {"seed": sample} if sample else {}  # repeated judgments: distinct requests
        # launch.judge.timeout_s is a deadline for each attempt as a whole; a reply far beyond max_tokens is refused
        with request_budget(settings.timeout_s, reply_limit_bytes(settings.max_tokens)):
            return client.chat.completions.create(model=settings.served_model or settings.model,
                                                  messages=chat_messages(request), temperature=settings.temperature,
                                                  max_tokens=settings.max_tokens, **extra)

    return call


def judge_all(requests: list[JudgeRequest], settings: JudgeSettings, cache: JudgeCache,
              desc: str = "judge", samples: list[int] | None = None) -> list[dict]:
    """One result per request, in order: ``{judgment, error, failure, cached, usage}``; ``failure`` is
    None for a reply, "api_error" for a request that failed after its retries (``mlit.records.FAILURE_KINDS``).
    ``samples`` gives each request's sample index (repeated judging); default all 0."""
    items = list(zip(requests, samples or [0] * len(requests)))
    uncached = any(cache.get(cache.key(settings, request, sample)) is None for request, sample in items)
    call = _retrying_call(make_client(settings), settings) if uncached else None  # no key needed when cached

    def one(item) -> dict:
        request, sample = item
        key = cache.key(settings, request, sample)
        entry = cache.get(key)
        if entry is not None:
            return {"judgment": entry["judgment"], "error": None, "failure": None, "cached": True,
                    "usage": entry.get("usage")}
        try:
            completion = call(request, sample)
            text = completion.choices[0].message.content
            if text is None:
                raise ValueError("the judge returned no message content")
        except Exception as error:  # recorded, not raised: the job completes with the rest
            body = getattr(error, "body", None)
            detail = f"{type(error).__name__}: {error}" + (f" {json.dumps(body)}" if body else "")
            if error.__cause__ is not None and str(error.__cause__) not in detail:  # e.g. the deadline's own words
                detail += f" ({type(error.__cause__).__name__}: {error.__cause__})"
            detail = redact_error(detail, settings)  # an endpoint may echo the key; redacted before cut
            return {"judgment": None, "error": detail[:500], "failure": "api_error", "cached": False, "usage": None}
        usage = completion.usage.model_dump() if completion.usage else None
        cache.put(key, {"model": settings.model, "prompt_name": request.prompt_name, "judgment": text,
                        "usage": usage, "temperature": settings.temperature, "max_tokens": settings.max_tokens})
        return {"judgment": text, "error": None, "failure": None, "cached": False, "usage": usage}

    from mlit.progress import Progress

    console = Progress(desc, len(items), "requests (cached ones included)")
    results = []
    with ThreadPoolExecutor(max_workers=settings.parallel) as pool:
        for result in tqdm(pool.map(one, items), total=len(items), desc=desc, unit="request"):
            results.append(result)
            console.update(len(results))
    return results
