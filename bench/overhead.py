"""(2) Per-call client overhead: CPU time the client process spends on one request of n history messages.

The server answers at once (latency 0) from its own process, so the figure is what the client itself costs:
building the body, JSON-encoding it, HTTP, parsing the answer -- ``time.process_time()`` of the client process
around each call, median over many calls. Messages are 200-400 characters, a system prompt then alternating
user/assistant turns ending with a user turn (``driver.conversation``).

* irouter Call: ``Call(model)(messages)`` with the list of message dicts (sent as they are).
* irouter Chat: ``Chat(model)`` whose history holds the first n-1 messages, called with the last one's text.
* openai create: ``client.chat.completions.create(model=..., messages=...)``.
* openai post: the SDK's low-level ``client.post("/chat/completions", body=..., cast_to=httpx.Response)``
  then ``.json()`` -- the SDK's HTTP stack without its typed request/response layer.
* irouter 0.3.1 Call / Chat: the same two calls through 0.3.1 (which wraps the openai SDK).

Run alone: ``python bench/overhead.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import common

SIZES = (10, 100, 240, 1000)


def columns(old: common.Interpreter | None) -> list[common.Column]:
    """The clients compared."""
    here = common.current().python
    cols = [
        common.Column("irouter_call", "irouter Call", here, "irouter-call", SIZES),
        common.Column("irouter_chat", "irouter Chat", here, "irouter-chat", SIZES),
        common.Column("openai", "openai create", here, "openai", SIZES),
        common.Column("openai_raw", "openai post (raw)", here, "openai-raw", SIZES),
    ]
    if old is not None:
        v = common.OLD_VERSION
        cols += [
            common.Column("old_call", f"irouter {v} Call", old.python, "irouter-call", SIZES),
            common.Column("old_chat", f"irouter {v} Chat", old.python, "irouter-chat", SIZES),
        ]
    return cols


def run(quick: bool = False, old: common.Interpreter | None = None) -> dict[str, Any]:
    """Measure every column; returns ``{"sizes", "columns": [...], "results": {key: driver JSON}}``."""
    cols = columns(old)
    extra = (
        ["--budget", "0.4", "--min-calls", "8", "--warmup", "2"]
        if quick
        else ["--budget", "1.2", "--min-calls", "15", "--warmup", "3"]
    )
    common.log(f"(2) per-call overhead, server latency 0, history sizes {SIZES}")
    results = common.measure("overhead", cols, 0.0, extra)
    return {"sizes": list(SIZES), "columns": [[c.key, c.label] for c in cols], "results": results}


def _cell(result: Any, size: int, field: str, digits: int) -> str:
    if result is None:
        return "n/a"
    item = result["result"].get(str(size))
    return "(skipped)" if item is None else common.fmt(item[field], digits)


def render(data: dict[str, Any]) -> str:
    """Markdown tables: client CPU ms per call (the figure), and wall ms per call (includes the server)."""
    labels = [label for _, label in data["columns"]]
    out = []
    for title, field, digits in (
        ("(2) Per-call client CPU, ms (median; server latency 0, in its own process)", "cpu_ms", 2),
        ("(2b) Per-call wall time, ms (median; includes the double's own time, see README)", "wall_ms", 1),
    ):
        rows = [
            [str(n), *(_cell(data["results"][key], n, field, digits) for key, _ in data["columns"])]
            for n in data["sizes"]
        ]
        out.append(f"{title}\n\n{common.table(['messages', *labels], rows)}")
    calls = {
        label: [data["results"][key]["result"][str(n)]["calls"] if data["results"][key] else 0 for n in data["sizes"]]
        for key, label in data["columns"]
    }
    out.append("timed calls per size: " + "; ".join(f"{k} {v}" for k, v in calls.items()))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls per size")
    parser.add_argument("--no-031", action="store_true", help=f"skip irouter {common.OLD_VERSION}")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    args = parser.parse_args(argv)
    data = run(args.quick, common.old_or_none(not args.no_031))
    return common.emit(render(data), data, args.json)


if __name__ == "__main__":
    sys.exit(main())
