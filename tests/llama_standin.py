"""A stand-in for ``python -m llama_cpp.server``, for tests/test_local_crash.py.

irouter starts it exactly as it starts llama.cpp's server (``$IROUTER_LLAMA_PYTHON -m llama_cpp.server --model F
--host H --port P ...``; the tests point ``IROUTER_LLAMA_PYTHON`` at a launcher that runs this file). It answers
``GET /v1/models`` like the real server, writes a line to ``$STANDIN_RECORD`` for every start and completion request,
and on a completion does what ``$STANDIN_MODE`` says:

- ``sigill``: kills itself with SIGILL before answering, as a llama.cpp built for another CPU does;
- ``exit``: exits with code 3 before answering;
- ``close``: drops the connection, closes its port and stays alive;
- ``serve``: answers (a fixed chat completion).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

ANSWER = "Hello from the stand-in."


def note(line: str) -> None:
    with open(os.environ["STANDIN_RECORD"], "a") as record:
        record.write(line + "\n")


def log(line: str) -> None:
    """What the real server prints goes to irouter's log file (stdout)."""
    print(line, flush=True)


def completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": "standin",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }


class Handler(BaseHTTPRequestHandler):
    closing = False

    def log_message(self, format: str, *args: Any) -> None:
        log(format % args)

    def reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.reply({"object": "list", "data": [{"id": "standin", "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = os.environ["STANDIN_MODE"]
        note(f"completion {os.getpid()}")
        log(f"standin: evaluating the prompt ({mode})")
        if mode == "sigill":
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
            signal.signal(signal.SIGILL, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGILL)
            time.sleep(60)  # never reached: the signal ends the process
        if mode == "exit":
            os._exit(3)
        if mode == "close":
            type(self).closing = True
            self.close_connection = True  # no response at all
            return
        self.reply(completion())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m", dest="module", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args(argv)
    note(f"start {os.getpid()} {args.module} {os.path.basename(args.model)}")
    log(f"standin: serving {args.model} on {args.host}:{args.port}")
    server = HTTPServer((args.host, args.port), Handler)
    while not Handler.closing:
        server.handle_request()
    server.server_close()
    log("standin: port closed, still running")
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1:])
