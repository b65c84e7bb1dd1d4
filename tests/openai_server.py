"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions protocol, for the judge tests.

Its reply to each request is decided by ``behaviour(request_json, attempt)``, where ``attempt``
counts the requests seen with the same user prompt. A behaviour returns one of:
``("reply", text)``, ``("status", code, headers)``, ``("drop",)`` (close the connection without an
answer) or ``("slow", seconds, text)``. Every request is recorded (body and headers).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def default_behaviour(request: dict, attempt: int):
    return ("reply", "The answer is fine. Rating: [[7]]")


class OpenAIServer:
    def __init__(self, behaviour=default_behaviour):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
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
                    payload = json.dumps({"error": {"message": "injected", "type": "test"}}).encode()
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
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
