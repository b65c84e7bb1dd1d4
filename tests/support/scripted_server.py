"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions protocol, whose replies a script
decides: the judge tests and ``bench/judge_throughput.py`` drive the real client against it (429s, 500s,
timeouts, garbage, latency).

It also speaks the Batch API: ``POST /v1/files`` (multipart upload), ``POST /v1/batches``,
``GET /v1/batches/{id}`` (``in_progress`` on the first poll, then processed: each line gets the same
``behaviour`` as an online request; 'status' lines go to the error file) and
``GET /v1/files/{id}/content``. Set ``hold_batches`` to keep batches in progress.

Its reply to each request is decided by ``behaviour(request_json, attempt)``, where ``attempt``
counts the requests seen with the same user prompt. A behaviour returns one of:
``("reply", text)``, ``("status", code, headers)`` (or ``("status", code, headers, message)``, the
error's message), ``("drop",)`` (close the connection without an answer), ``("slow", seconds, text)``
or ``("trickle", seconds, text)`` (the whole response, status line and headers included, one byte
every ``seconds``). Every request is recorded (body and headers).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def default_behaviour(request: dict, attempt: int):
    return ("reply", "The answer is fine. Rating: [[7]]")


class OpenAIServer:
    def __init__(self, behaviour=default_behaviour, port: int = 0):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_lines: list[dict] = []
        self.hold_batches = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_json(self, obj, code=200):
                payload = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                parts = self.path.rstrip("/").split("/")
                if self.path.startswith("/v1/batches/"):
                    self.send_json(server.poll_batch(parts[-1]))
                elif self.path.startswith("/v1/files/") and parts[-1] == "content":
                    payload = server.files[parts[-2]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    self.send_json({"error": {"message": f"no route {self.path}"}}, 404)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.startswith("/v1/files"):
                    from email.parser import BytesParser

                    message = BytesParser().parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
                    content = next(part.get_payload(decode=True) for part in message.get_payload()
                                   if part.get_param("name", header="content-disposition") == "file")
                    with server.lock:
                        file_id = f"file-{len(server.files)}"
                        server.files[file_id] = content
                    self.send_json({"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                                    "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})
                    return
                body = json.loads(raw)
                if self.path.startswith("/v1/batches"):
                    with server.lock:
                        batch_id = f"batch_{len(server.batches)}"
                        server.batches[batch_id] = {
                            "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                            "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                            "error_file_id": None, "request_counts": {"total": 0, "completed": 0, "failed": 0}}
                    self.send_json(server.batches[batch_id])
                    return
                key = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    attempt = server.attempts.get(key, 0)
                    server.attempts[key] = attempt + 1
                action = server.behaviour(body, attempt)
                if action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action[0] == "status":
                    message = action[3] if len(action) > 3 else "injected"  # ("status", code, headers[, message])
                    payload = json.dumps({"error": {"message": message, "type": "test"}}).encode()
                    self.send_response(action[1])
                    for name, value in action[2].items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action[0] == "slow":
                    time.sleep(action[1])
                text = action[-1]
                payload = json.dumps({
                    "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                }).encode()
                try:
                    if action[0] == "trickle":  # the whole response, status line first, one byte per interval
                        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                f"Content-Length: {len(payload)}\r\n\r\n").encode()
                        for index in range(len(head) + len(payload)):
                            self.wfile.write((head + payload)[index:index + 1])
                            self.wfile.flush()
                            time.sleep(action[1])
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a deadline, a size limit)
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def poll_batch(self, batch_id: str) -> dict:
        """A batch moves to in_progress on its first poll and is processed on the next one."""
        with self.lock:
            batch = self.batches[batch_id]
            if batch["status"] == "validating" or self.hold_batches:
                batch["status"] = "in_progress"
                return dict(batch)
            if batch["status"] != "in_progress":
                return dict(batch)
            outputs, errors = [], []
            for line in self.files[batch["input_file_id"]].decode().splitlines():
                entry = json.loads(line)
                body = entry["body"]
                self.batch_lines.append(body)
                key = body["messages"][-1]["content"]
                attempt = self.attempts.get(key, 0)
                self.attempts[key] = attempt + 1
                action = self.behaviour(body, attempt)
                if action[0] in ("status", "drop"):
                    code = action[1] if action[0] == "status" else 500
                    errors.append({"id": f"r{len(errors)}", "custom_id": entry["custom_id"], "error": None,
                                   "response": {"status_code": code, "body": {"error": {"message": "injected"}}}})
                else:
                    outputs.append({"id": f"r{len(outputs)}", "custom_id": entry["custom_id"], "error": None,
                                    "response": {"status_code": 200, "body": {
                                        "object": "chat.completion", "model": body["model"],
                                        "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": action[-1]}}],
                                        "usage": {"prompt_tokens": 100, "completion_tokens": 10,
                                                  "total_tokens": 110}}}})
            for name, rows in (("output_file_id", outputs), ("error_file_id", errors)):
                if rows:
                    file_id = f"file-{len(self.files)}"
                    self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                    batch[name] = file_id
            batch["status"] = "completed"
            batch["request_counts"] = {"total": len(outputs) + len(errors), "completed": len(outputs),
                                       "failed": len(errors)}
            return dict(batch)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
