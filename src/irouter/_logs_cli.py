"""``irouter logs`` and ``irouter cache``: the conversation log and the response cache from the command line.

    irouter logs [-n N] [-q WORDS] [--json]       recent conversations, or those matching WORDS (full-text search)
    irouter logs show [ID] [--json]               one conversation (the most recent without ID), Markdown on a terminal
    irouter logs stats [--days N] [--json]        spend and tokens per model per day
    irouter cache stats [--json]                  the response cache: entries, hits, size, dollars saved
    irouter cache clear [--older-than SECONDS]    forget cached answers (the log's conversations stay)

Every command takes ``--path FILE`` (default: ``IROUTER_LOG_PATH``, else the user data folder's
``irouter/logs.db``). A thin layer over `irouter._log.Log`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .cli import FAILED, OK, USAGE, Printer, _money


def _path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", help="the log file (default: IROUTER_LOG_PATH, else the user data folder's)")


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1, ensure_ascii=False, default=str))


def logs_command(argv: list[str]) -> int:
    """``irouter logs ...``."""
    from ._log import Log

    if argv[:1] == ["show"]:
        parser = argparse.ArgumentParser(prog="irouter logs show", description="Print one logged conversation.")
        parser.add_argument("id", nargs="?", help="a conversation id or its start (default: the most recent)")
        parser.add_argument("--json", action="store_true", help="the conversation as JSON (Chat.to_dict's shape)")
        _path(parser)
        args = parser.parse_args(argv[1:])
        return _run(lambda: _show(Log(args.path), args.id, args.json))
    if argv[:1] == ["stats"]:
        parser = argparse.ArgumentParser(prog="irouter logs stats", description="Spend and tokens per model per day.")
        parser.add_argument("--days", type=int, help="only the last N days")
        parser.add_argument("--json", action="store_true", help="JSON records instead of a table")
        _path(parser)
        args = parser.parse_args(argv[1:])
        return _run(lambda: _stats(Log(args.path), args.days, args.json))
    parser = argparse.ArgumentParser(prog="irouter logs", description="Logged conversations, most recent first.")
    parser.add_argument("-q", "--query", help="only conversations matching these words (SQLite full-text search)")
    parser.add_argument("-n", "--count", type=int, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="JSON records instead of a table")
    _path(parser)
    args = parser.parse_args(argv)
    return _run(lambda: _list(Log(args.path), args.query, args.count, args.json))


def _run(action: Any) -> int:
    try:
        action()
    except (FileNotFoundError, KeyError, ValueError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"irouter: error: {text}", file=sys.stderr)
        return USAGE
    except Exception as exc:  # a store that cannot be read (corrupt, newer schema): one line, not a traceback
        print(f"irouter: error: {exc}", file=sys.stderr)
        return FAILED
    return OK


def _list(log: Any, query: str | None, count: int, as_json: bool) -> None:
    rows = log.search(query, count) if query else log.conversations(count)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        print("(no conversations)" if not query else "(nothing matches)", file=sys.stderr)
    for row in rows:
        models = ", ".join(row["models"])
        title = " ".join((row.get("snippet") or row["title"] or "").split())[:70]
        print(f"{row['id']}  {_when(row['updated'])}  {_money(row['cost']):>10}  {models}\n    {title}")


def _show(log: Any, conversation: str | None, as_json: bool) -> None:
    data = log.get(conversation)
    if as_json:
        _print_json(data)
        return
    from ._persist import history_to_markdown

    history = data["history"]
    head = f"# {data['id']}\n\n*{', '.join(data['models'])} · {_when(data['updated'])}*\n\n"
    shown = history[data["models"][0]] if len(history) == 1 else history
    Printer(stats=False).markdown(head + history_to_markdown(shown))


def _stats(log: Any, days: int | None, as_json: bool) -> None:
    rows = log.stats(days)
    if as_json:
        _print_json(rows)
        return
    print(
        f"{'day':<10}  {'model':<36}  {'requests':>8}  {'cached':>6}  {'prompt':>9}  {'completion':>10}  {'cost':>10}"
    )
    for r in rows:
        print(
            f"{r['day']:<10}  {r['model']:<36}  {r['requests']:>8}  {r['cached']:>6}  {r['prompt_tokens']:>9}  "
            f"{r['completion_tokens']:>10}  {_money(r['cost']):>10}"
        )


def cache_command(argv: list[str]) -> int:
    """``irouter cache stats`` / ``irouter cache clear``."""
    from ._log import Log

    parser = argparse.ArgumentParser(prog="irouter cache", description="The response cache (cache_responses=True).")
    parser.add_argument("action", choices=["stats", "clear"])
    parser.add_argument("--older-than", type=float, metavar="SECONDS", help="clear: only answers older than this")
    parser.add_argument("--json", action="store_true", help="stats: as JSON")
    _path(parser)
    args = parser.parse_args(argv)
    log = Log(args.path)
    if args.action == "clear":
        return _run(lambda: print(f"(cleared {log.clear_cache(args.older_than)} cached answers)", file=sys.stderr))
    return _run(lambda: _cache_stats(log.cache_stats(), args.json))


def _cache_stats(stats: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(stats)
        return
    print(
        f"{stats['entries']} cached answers ({stats['bytes']:,} bytes), served {stats['hits']} times, "
        f"saving {_money(stats['saved'])}; oldest {_when(stats['oldest'])}, newest {_when(stats['newest'])}"
    )
