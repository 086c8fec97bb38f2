"""A real OpenAI-compatible HTTP server on loopback for tests: `/v1/chat/completions` and `/v1/models`, answered
by a deterministic rule-based "model" the test passes in. Real sockets, real JSON, real HTTP status codes: what
the endpoint backend and the judge talk to is exactly what they would talk to in production.

    with ChatServer(lambda messages, tools: {"content": "hi"}) as server:
        EndpointBackend(server.base_url, "rules")
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, respond, model: str = "rules") -> None:
        self.respond, self.model = respond, model
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with outer.lock:
                    outer.requests.append({**body, "authorization": self.headers.get("Authorization")})
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                answer = outer.respond(body["messages"], body.get("tools"))
                if "status" in answer:
                    return self._send(answer["status"], {"error": {"message": answer.get("message", "boom")}})
                message = {"role": "assistant", "content": answer.get("content")}
                if answer.get("tool_calls"):
                    message["tool_calls"] = [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                        }
                        for i, c in enumerate(answer["tool_calls"])
                    ]
                words = len((answer.get("content") or "").split())
                self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": message, "finish_reason": answer.get("finish_reason", "stop")}
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
