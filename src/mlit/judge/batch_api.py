"""OpenAI Batch API mode for the judge (about half the price; results within the batch window).

Uncached requests are uploaded as one JSONL file and submitted as a batch whose ``custom_id`` is
the request's cache key; the batch is polled, its output collected by ``custom_id`` into the same
on-disk cache as online calls, and the requests of its error file (or left over when it expired)
are submitted again, up to ``max_retries`` rounds. Every submitted batch is recorded under
``<cache>/batches/`` before polling starts, so a killed job resumes polling it on the next run
instead of paying for the same requests twice.
"""

from __future__ import annotations

import json
import time

from tqdm import tqdm

from mlit.files import write_json
from mlit.judge.client import JudgeCache, JudgeSettings, chat_messages, make_client, reply_limit_bytes
from mlit.judge.prompts import JudgeRequest

TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchJudge:
    def __init__(self, settings: JudgeSettings, cache: JudgeCache, poll_s: float = 60.0):
        self.settings, self.cache, self.poll_s = settings, cache, poll_s
        self.client = make_client(settings)
        self.state_dir = cache.directory / "batches"

    # --- state of submitted batches (one JSON file each) ---------------------------------------
    def pending(self) -> dict[str, dict]:
        records = {}
        for path in sorted(self.state_dir.glob("*.json")) if self.state_dir.is_dir() else []:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["state"] == "pending" and record["model"] == self.settings.model:
                records[record["batch_id"]] = record
        return records

    def _save(self, record: dict) -> None:
        write_json(self.state_dir / f"{record['batch_id']}.json", record)

    # --- submit / poll / collect ---------------------------------------------------------------
    def submit(self, items: list[tuple[str, JudgeRequest, int]]) -> str:
        """One batch for ``items`` (cache key, request, sample); recorded before it is polled."""
        lines = []
        for key, request, sample in items:
            body = {"model": self.settings.served_model or self.settings.model, "messages": chat_messages(request),
                    "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}
            if sample:
                body["seed"] = sample
            lines.append(json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                                     "body": body}, ensure_ascii=False))
        uploaded = self.client.files.create(file=("judge-batch.jsonl", ("\n".join(lines) + "\n").encode()),
                                            purpose="batch")
        batch = self.client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                           completion_window="24h")
        self._save({"batch_id": batch.id, "model": self.settings.model, "state": "pending",
                    "submitted_at": time.time(), "prompt_names": {key: request.prompt_name
                                                                  for key, request, _ in items},
                    "custom_ids": [key for key, _, _ in items]})
        print(f"submitted batch {batch.id} with {len(items)} requests", flush=True)
        return batch.id

    def wait(self, batch_id: str):
        with tqdm(desc=f"batch {batch_id}", unit="poll") as bar:
            while True:
                batch = self.client.batches.retrieve(batch_id)
                bar.set_postfix(status=batch.status)
                bar.update()
                if batch.status in TERMINAL:
                    return batch
                time.sleep(self.poll_s)

    def collect(self, batch_id: str) -> dict[str, str]:
        """Cache the batch's successful completions; returns {custom_id: error} for the rest."""
        record = json.loads((self.state_dir / f"{batch_id}.json").read_text(encoding="utf-8"))
        batch = self.wait(batch_id)
        errors: dict[str, str] = {}
        done: set[str] = set()
        for file_id, kind in ((batch.output_file_id, "output"), (batch.error_file_id, "error")):
            if not file_id:
                continue
            for line in self.client.files.content(file_id).text.splitlines():
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    key = entry["custom_id"]
                except (json.JSONDecodeError, KeyError):
                    continue  # a garbled line: its request counts as not done and is retried
                response = entry.get("response") or {}
                body = response.get("body") or {}
                if response.get("status_code") == 200 and not entry.get("error"):
                    try:
                        text = body["choices"][0]["message"]["content"]
                    except (KeyError, IndexError, TypeError):
                        text = None
                    limit = reply_limit_bytes(self.settings.max_tokens)
                    if text is not None and len(text.encode("utf-8", "surrogatepass")) > limit:
                        errors[key] = f"batch {batch_id}: the judge's reply is larger than {limit} bytes, more " \
                                      "than judge.max_tokens tokens can be; it was not stored"
                        continue
                    if text is not None:
                        self.cache.put(key, {"model": self.settings.model, "prompt_name":
                                             record["prompt_names"].get(key), "judgment": text,
                                             "usage": body.get("usage"), "temperature": self.settings.temperature,
                                             "max_tokens": self.settings.max_tokens, "batch_id": batch_id})
                        done.add(key)
                        continue
                detail = entry.get("error") or body.get("error") or body
                errors[key] = f"batch {batch_id} ({kind} file): status {response.get('status_code')}: " \
                              f"{json.dumps(detail)[:300]}"
        for key in record["custom_ids"]:
            if key not in done and key not in errors:
                errors[key] = f"batch {batch_id} ended '{batch.status}' without a result for this request"
        record.update(state="done", status=batch.status, failed=len(errors))
        self._save(record)
        return errors

    def run(self, items: list[tuple[str, JudgeRequest, int]], max_rounds: int) -> dict[str, str]:
        """Judge every item not in the cache: first collect batches a killed run left pending, then
        submit the rest; retry what failed. Returns {cache key: error} of what still failed."""
        errors: dict[str, str] = {}
        for batch_id in self.pending():
            errors.update(self.collect(batch_id))
        for _ in range(max_rounds + 1):
            todo = [(key, request, sample) for key, request, sample in items if self.cache.get(key) is None]
            if not todo:
                return {}
            errors = {}
            errors.update(self.collect(self.submit(todo)))
        return {key: error for key, error in errors.items() if self.cache.get(key) is None}


def judge_all_batch(requests: list[JudgeRequest], settings: JudgeSettings, cache: JudgeCache,
                    samples: list[int] | None = None, poll_s: float = 60.0) -> list[dict]:
    """Like ``judge_all`` (one result per request, in order) through the Batch API."""
    samples = samples or [0] * len(requests)
    keys = [cache.key(settings, request, sample) for request, sample in zip(requests, samples)]
    cached_before = {key for key in keys if cache.get(key) is not None}
    unique = {}
    for key, request, sample in zip(keys, requests, samples):
        if key not in cached_before:
            unique.setdefault(key, (key, request, sample))
    errors = BatchJudge(settings, cache, poll_s).run(list(unique.values()), settings.max_retries) if unique else {}
    results = []
    for key in keys:
        entry = cache.get(key)
        if entry is not None:
            results.append({"judgment": entry["judgment"], "error": None, "failure": None,
                            "cached": key in cached_before, "usage": entry.get("usage")})
        else:
            results.append({"judgment": None, "error": errors.get(key, "no batch result")[:500],
                            "failure": "api_error", "cached": False, "usage": None})
    return results
