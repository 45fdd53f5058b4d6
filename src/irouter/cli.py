"""The ``irouter`` command: ask one or several models, chat interactively, browse the model catalog.

A thin layer over the library: it parses, calls `Chat` and the catalog, prints, and turns irouter's errors into
one line on stderr and an exit code (`EXIT_CODES`). ``import irouter`` never imports this module.

    irouter "prompt" [-m MODEL ...] [-s SYSTEM] [-a FILE_OR_URL ...]    stream an answer (stdin is appended)
    irouter chat [-m MODEL ...]                                         an interactive conversation
    irouter models [--free] [--search TEXT] [--modality M] [--tools] [--json]
    irouter grid PROMPTS -m MODEL ... [--store FILE] [--output FILE] [--max-cost D] [--dry-run]   prompts x models
    irouter compare "prompt" -m A -m B ... [--judge J ...]    answers side by side, ranked, with cost and latency
    irouter logs [-q WORDS] | logs show [ID] | logs stats       the conversation log (every chat is logged)
    irouter cache stats | cache clear                           the response cache
    irouter providers SLUG [--json] [--refresh]                         a model's providers, side by side
    irouter batches [list|show ID|delete ID] [--store FILE]            OpenRouter Batch API batches (deferred grids)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from . import errors
from .chat import Chat

DEFAULT_MODEL = "openai/gpt-4o-mini"
LOCAL_MODEL = "local/smollm2"

OK, FAILED, USAGE, AUTH, BUDGET, NETWORK, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_CODES = {
    "usage": USAGE,  # bad arguments: unknown option, empty prompt, missing file
    "auth": AUTH,  # no key, a wrong key, not allowed
    "budget": BUDGET,  # out of credits, or the chat's budget is used up
    "network": NETWORK,  # could not reach the server, timed out
    "other": FAILED,  # any other error the server or irouter reported
}


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, errors.MultiModelError):
        return max((exit_code(e) for e in exc.errors.values()), default=FAILED)
    return class_code(type(exc))


def class_code(kind: type[BaseException]) -> int:
    """The exit code for an error of class ``kind`` (what `exit_code` says of an instance)."""
    if issubclass(kind, (errors.MissingAPIKeyError, errors.AuthenticationError, errors.PermissionDeniedError)):
        return AUTH
    if issubclass(kind, (errors.BudgetExceeded, errors.PaymentRequiredError)):
        return BUDGET
    if issubclass(kind, errors.APIConnectionError):
        return NETWORK
    if issubclass(kind, (TypeError, ValueError, OSError)) and not issubclass(kind, errors.APIError):
        return USAGE
    return FAILED


def fail(exc: BaseException, models: list[str] | None = None) -> int:
    """Say what went wrong, one line per failed model (in ``models``' order), and return the exit code."""
    if isinstance(exc, errors.MultiModelError):
        order = models or list(exc.errors)
        for model, error in sorted(exc.errors.items(), key=lambda item: order.index(item[0])):
            print(f"irouter: error: {model}: {describe(error)}", file=sys.stderr)
    else:
        print(f"irouter: error: {describe(exc)}", file=sys.stderr)
    return exit_code(exc)


def describe(exc: BaseException) -> str:
    """One line about ``exc`` in the command's words: flags, not Python arguments."""
    if isinstance(exc, errors.UnknownModelError):
        hint = f" Did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
        if any(c.isspace() for c in exc.model):
            return f"{exc.model!r} is not a model slug: slugs have no spaces.{hint} `irouter models` lists them."
        return (
            f"{exc.model!r} is not in the model catalog.{hint} `irouter models` lists them; add --no-check to send "
            "anyway."
        )
    if isinstance(exc, errors.CapabilityError):
        return (
            f"{exc.model} does not take {exc.capability}. `irouter models` shows what each model takes; add "
            "--no-check to send anyway."
        )
    if isinstance(exc, errors.BudgetExceeded) and exc.kind == "cost":
        if exc.needed and exc.spent < exc.limit:  # refused by its worst case, not by what was spent
            return (
                f"Budget reached: the request to {exc.model} could cost up to ${exc.needed:.6f}, more than is left "
                f"of --max-cost {exc.limit:g} (${exc.spent:.6f} spent), so it was not sent. Lower its worst case "
                "with -o max_tokens=N, or raise --max-cost."
            )
        return (
            f"Budget reached: ${exc.spent:.6f} spent of --max-cost {exc.limit:g}, so the request to {exc.model} was "
            "not sent."
        )
    if type(exc) is errors.MissingAPIKeyError:  # the library's words (api_key=...), not --api-key-env's own
        return (
            "No OpenRouter API key: set OPENROUTER_API_KEY (or put it in a .env file); for another server, "
            "--base-url URL --api-key-env NAME."
        )
    text = str(exc)
    if isinstance(exc, ValueError) and "allow_unpriced=True" in text:  # Chat's budget check, in flags
        for python, flag in (
            ("max_cost=", "--max-cost"),
            ("max_total_tokens=", "max_total_tokens"),
            ("Set max_tokens=... as a default, or pass", "Add -o max_tokens=N, or"),
            ("Pass allow_unpriced=True", "Add --allow-unpriced"),
            ("allow_unpriced=True", "--allow-unpriced"),
        ):
            text = text.replace(python, flag)
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------- configuration


def config() -> dict[str, Any]:
    """``$IROUTER_CONFIG`` or ``~/.config/irouter/config.json``: ``{"model": ..., "system": ...}``."""
    path = Path(
        os.environ.get("IROUTER_CONFIG")
        or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "irouter" / "config.json"
    )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def default_models(chosen: list[str] | None, base_url: str | None) -> list[str]:
    """``-m`` models, else ``$IROUTER_MODEL``, else the config file's, else OpenRouter's default with a key (or a
    ``--base-url``), else the offline local model."""
    if chosen:
        return chosen
    configured = os.environ.get("IROUTER_MODEL") or config().get("model")
    if configured:
        return [str(configured)]
    return [DEFAULT_MODEL if os.environ.get("OPENROUTER_API_KEY") or base_url else LOCAL_MODEL]


def load_env() -> None:
    """The ``.env`` of the current directory (or a parent), where python-dotenv is installed."""
    try:
        from dotenv import find_dotenv, load_dotenv
    except ImportError:
        return
    load_dotenv(find_dotenv(usecwd=True))  # without usecwd it searches from this file's folder, not the user's


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``-o temperature=0.2 -o stop='["\\n"]'``: values are JSON when they parse as JSON, text otherwise."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-o takes key=value, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", action="append", help="model slug; repeat for several models at once")
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="request option, e.g. -o temperature=0.2 (values are JSON when they parse)",
    )
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: OpenRouter)")
    parser.add_argument("--api-key-env", metavar="NAME", help="the environment variable holding the key for --base-url")
    parser.add_argument("--max-cost", type=float, help="stop before spending more than this many dollars")
    parser.add_argument(
        "--allow-unpriced",
        action="store_true",
        help="accept --max-cost for a model whose catalog lists no price (only reported costs count)",
    )
    parser.add_argument("--no-check", action="store_true", help="send even if the model catalog says no")
    parser.add_argument("--no-stats", action="store_true", help="no tokens/cost line after each answer")
    parser.add_argument("--no-log", action="store_true", help="do not keep this conversation in the log")


class KeyVariableUnset(errors.MissingAPIKeyError):
    """``--api-key-env NAME`` names a variable that is not set."""


def api_key(args: argparse.Namespace) -> str | None:
    """The key named by ``--api-key-env`` (``None`` without it: OpenRouter's key comes from OPENROUTER_API_KEY)."""
    if not args.api_key_env:
        return None
    key = os.environ.get(args.api_key_env, "").strip()
    if not key:
        raise KeyVariableUnset(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    return key


FLAGS = {
    "system": "-s/--system",
    "base_url": "--base-url",
    "api_key": "--api-key-env NAME",
    "max_cost": "--max-cost",
    "allow_unpriced": "--allow-unpriced",
}
"""Chat arguments the command sets from its flags: ``-o`` may not give them too."""


def make_chat(args: argparse.Namespace) -> Chat[Any]:
    models = default_models(args.model, args.base_url)
    system = args.system if args.system is not None else config().get("system", "You are a helpful assistant.")
    options = parse_options(args.option)
    for name, flag in FLAGS.items():
        if name in options:
            raise ValueError(f"-o {name}=...: use {flag} instead")
    if args.no_check:
        options["check_capabilities"] = False
    return Chat(
        models if len(models) > 1 else models[0],
        system=system,
        api_key=api_key(args),
        base_url=args.base_url,
        max_cost=args.max_cost,
        allow_unpriced=args.allow_unpriced,
        log=not args.no_log,
        **options,
    )


# --------------------------------------------------------------------------------------------- output


class Printer:
    """Writes answers: live Markdown on a terminal (when ``rich`` is installed), plain text when piped."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, stats: bool = True) -> None:
        self.out, self.err, self.stats = out, err, stats
        self.rich = out.isatty() and not os.environ.get("NO_COLOR") and _has_rich()

    def stream(self, chat: Chat[Any], message: Any, **options: Any) -> Any:
        """Stream one turn to the screen. Several models are shown one after another, each labelled and live as
        soon as its turn comes (all of them generate at once meanwhile). On a terminal with ``rich`` the Markdown
        is rendered as it grows; piped, the text is written as it arrives."""
        start = time.monotonic()
        models = chat.models
        shown = _Shown(models)
        first: float | None = None
        live = self._live()
        with live, chat(message, stream=True, **options) as stream:
            try:
                for item in stream:
                    model, piece = (models[0], item) if len(models) == 1 else item
                    first = first if first is not None else time.monotonic() - start
                    shown.texts[model].append(piece)
                    shown.failed = set(stream.failed)
                    self._show(shown, stream.finished, live)
            except errors.MultiModelError as exc:  # what the others answered is shown all the same
                shown.failed = set(exc.errors)
                self._show(shown, models, live)
                self._stats(chat, first)
                raise
            self._show(shown, models, live)
            result = stream.result
        self._stats(chat, first)
        return result

    def _live(self) -> Any:
        if not self.rich:
            return contextlib.nullcontext()
        from rich.console import Console
        from rich.live import Live

        return Live(console=Console(file=self.out), refresh_per_second=12, vertical_overflow="visible")

    def _show(self, shown: _Shown, finished: list[str], live: Any) -> None:
        text = _flush(shown, finished)
        if not self.rich:
            self.out.write(text)
            self.out.flush()
            return
        from rich.markdown import Markdown

        shown.screen += text
        live.update(Markdown(shown.screen))

    def markdown(self, text: str) -> None:
        if self.rich:
            from rich.console import Console
            from rich.markdown import Markdown

            Console(file=self.out).print(Markdown(text))
        else:
            self.out.write(text + "\n")

    def _stats(self, chat: Chat[Any], ttft: float | None) -> None:
        if not self.stats:
            return
        entries = chat.ledger  # every request so far, also to models since dropped with /model
        costs = [e.cost for e in entries if e.cost is not None]
        parts = [
            f"{sum(e.prompt_tokens for e in entries)} in / {sum(e.completion_tokens for e in entries)} out tokens",
            f"${sum(costs):.6f}" if costs or not entries else "cost unknown",
        ]
        if ttft is not None:
            parts.append(f"first text after {ttft:.2f} s")
        print(f"[{', '.join(parts)}]", file=self.err)


class _Shown:
    """What has been streamed to the screen so far, per model."""

    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.texts: dict[str, list[str]] = {m: [] for m in models}
        self.written: dict[str, int] = {}
        self.ended: set[str] = set()
        self.failed: set[str] = set()
        """Models known to have failed: no section unless some of their text was shown."""
        self.screen = ""


def _flush(shown: _Shown, finished: list[str]) -> str:
    """The text that can be shown now: earlier models in full, the first unfinished one as far as it got (its
    heading once its first text is in)."""
    out = []
    for model in shown.models:
        if model not in shown.written and not shown.texts[model]:
            if model not in finished:
                break  # its section starts with its first text
            if model in shown.failed:
                continue  # failed before any text: no section (its error line comes at the end)
        if model not in shown.written:
            if len(shown.models) > 1:
                out.append(f"{chr(10) if shown.written else ''}## {model}\n\n")
            shown.written[model] = 0
        pieces = shown.texts[model]
        out.append("".join(pieces[shown.written[model] :]))
        shown.written[model] = len(pieces)
        if model not in finished:
            break
        if model not in shown.ended:
            out.append("\n")
            shown.ended.add(model)
    return "".join(out)


def _has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


# --------------------------------------------------------------------------------------------- commands


def prompt_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="irouter", description="Ask one or several models; the answer streams.")
    parser.add_argument("prompt", nargs="*", help="the message (stdin, when piped, is added after it)")
    parser.add_argument("-a", "--attach", action="append", default=[], help="a file path or URL to attach")
    parser.add_argument("--json", action="store_true", help="print the answer, usage and cost as JSON")
    parser.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    common(parser)
    args = parser.parse_args(argv)
    load_env()
    text = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{text}\n\n{piped}" if text and piped.strip() else (text or piped)
    if not text.strip() and not args.attach:
        parser.error("give a prompt (or pipe text into irouter)")
    # An attachment that is not a URL is a file that must exist and be of a kind irouter knows: as a Path it is never
    # mistaken for text (a plain string naming a missing or unknown file would be sent as its own name).
    attachments = [a if _is_url(a) else Path(a) for a in args.attach]
    message: Any = [*([text] if text.strip() else []), *attachments] if attachments else text
    chat: Chat[Any] | None = None
    try:
        chat = make_chat(args)
        if args.json or args.no_stream:
            return whole(chat, message, args)
        Printer(stats=not args.no_stats).stream(chat, message)
    except KeyboardInterrupt:
        print("\nirouter: stopped", file=sys.stderr)
        return INTERRUPTED
    except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
        return fail(exc, chat.models if chat is not None else None)
    return OK


def whole(chat: Chat[Any], message: Any, args: argparse.Namespace) -> int:
    """``--json`` / ``--no-stream``: ask, then print every answer that arrived (and, with several models, the
    errors of those that failed: per model in the JSON, one line each on stderr)."""
    failure: errors.MultiModelError | None = None
    answer: Any
    try:
        answer = chat(message)
    except errors.MultiModelError as exc:
        answer, failure = exc.answers, exc
    if args.json:
        print(json.dumps(_report(chat, answer, failure), indent=1, ensure_ascii=False, default=str))
    else:
        printer = Printer(stats=not args.no_stats)
        printer.markdown(
            answer if isinstance(answer, str) else "\n\n".join(f"## {m}\n\n{a}" for m, a in answer.items())
        )
        printer._stats(chat, None)
    return fail(failure, chat.models) if failure is not None else OK


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://", "data:"))


def _report(chat: Chat[Any], answer: Any, failure: errors.MultiModelError | None = None) -> dict[str, Any]:
    """The ``--json`` report: one model's answer, usage and cost; for several, that per model, with ``"error"``
    (``message`` and ``kind``, the `EXIT_CODES` name) in place of ``"answer"`` for a model that failed."""
    if len(chat.models) == 1:
        return {"model": chat.models[0], "answer": answer, "usage": chat.usage, "cost": chat.cost}
    report: dict[str, Any] = {}
    for m in chat.models:
        error = failure.errors.get(m) if failure is not None else None
        outcome = {"error": {"message": describe(error), "kind": _kind(error)}} if error else {"answer": answer[m]}
        report[m] = {**outcome, "usage": chat.usage[m], "cost": chat.cost[m]}
    return report


def _kind(exc: BaseException) -> str:
    code = exit_code(exc)
    return next(name for name, value in EXIT_CODES.items() if value == code)


def models_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="irouter models", description="The model catalog (no key needed).")
    parser.add_argument("--free", action="store_true", help="free models only")
    parser.add_argument("--search", help="words that must appear in the id, name or description")
    parser.add_argument("--modality", choices=["image", "audio", "file", "video"], help="an input it must take")
    parser.add_argument("--tools", action="store_true", help="models that take tools")
    parser.add_argument("--json", action="store_true", help="JSON records instead of a table")
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: OpenRouter)")
    parser.add_argument("--api-key-env", metavar="NAME", help="the environment variable holding the key, if needed")
    args = parser.parse_args(argv)
    load_env()
    from .catalog import models

    try:
        found = models(
            args.search,
            free=True if args.free else None,
            modality=args.modality,
            tools=True if args.tools else None,
            base_url=args.base_url,
            api_key=api_key(args),
        )
    except (errors.IrouterError, ValueError) as exc:
        return fail(exc)
    if args.json:
        rows = [
            {
                "id": m.id,
                "name": m.name,
                "context_length": m.context_length,
                "input_modalities": list(m.input_modalities),
                "prompt_per_million": m.prompt_price_per_million,
                "completion_per_million": m.completion_price_per_million,
                "tools": m.supports_tools,
                "free": m.is_free,
            }
            for m in found
        ]
        print(json.dumps(rows, indent=1))
        return OK
    table = [("model", "context", "$/M in", "$/M out", "inputs")]
    for m in found:
        table.append(
            (
                m.id,
                f"{m.context_length:,}" if m.context_length else "?",
                _money(m.prompt_price_per_million),
                _money(m.completion_price_per_million),
                ",".join(m.input_modalities),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(found)} model{'s' if len(found) != 1 else ''}", file=sys.stderr)
    return OK


def providers_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="irouter providers",
        description="The providers of one model: price, context, quantization, speed, uptime (no key needed).",
    )
    parser.add_argument("slug", help="a model slug, e.g. moonshotai/kimi-k3 (SLUG@provider keeps that provider's)")
    parser.add_argument("--json", action="store_true", help="JSON records instead of a table")
    parser.add_argument("--refresh", action="store_true", help="fetch anew, not from the day-long cache")
    parser.add_argument("--base-url", help="OpenRouter-compatible base URL (default: OpenRouter)")
    args = parser.parse_args(argv)
    load_env()
    from ._providers import providers

    try:
        found = providers(args.slug, base_url=args.base_url, refresh=args.refresh)
    except (errors.IrouterError, ValueError) as exc:
        return fail(exc)
    if args.json:
        print(json.dumps([p.to_dict() for p in found], indent=1))
    else:
        print(found.table())
        print(f"{len(found)} provider{'s' if len(found) != 1 else ''} of {found.model}", file=sys.stderr)
    return OK


def grid_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="irouter grid",
        description="Send every prompt to every model: resumable with --store, a cost forecast first, a hard cap.",
    )
    parser.add_argument(
        "prompts", help='a .jsonl file (rows {"id": ..., "prompt": ...}), a text file (one prompt a line), or -'
    )
    parser.add_argument("--store", help="SQLite file keeping every finished cell: the same command again resumes")
    parser.add_argument("--output", help="write each cell as a JSON line to this file (default: stdout)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at most (default 64)")
    parser.add_argument("--rpm", type=int, help="requests per minute per model, at most")
    parser.add_argument("--tpm", type=int, help="tokens per minute per model, at most")
    parser.add_argument("--dry-run", action="store_true", help="print the cost forecast and send nothing")
    parser.add_argument("--force", action="store_true", help="run even if the forecast expects more than --max-cost")
    parser.add_argument("--no-retry", action="store_true", help="keep cells that failed in an earlier run as they are")
    parser.add_argument("--json", action="store_true", help="with --dry-run, the forecast as JSON")
    parser.add_argument(
        "--deferred",
        nargs="?",
        const="all",
        choices=("all", "mixed"),
        help="send the cells through OpenRouter's Batch API (about half price, results within 24 h); "
        "--deferred=mixed sends the cells it refuses (images, files...) the normal way",
    )
    common(parser)
    args = parser.parse_args(argv)
    load_env()
    from ._store import StoreError

    try:
        prompts = read_prompts(args.prompts)
        grid = make_grid(args, prompts)
        if args.dry_run:
            forecast = grid.forecast()
            print(json.dumps(forecast.to_dict(), indent=1) if args.json else str(forecast))
            return OK
        with _opened(args.output) as out:
            tally = _Tally(grid.models)
            for cell in grid.run():
                out.write(json.dumps(cell.to_dict(), ensure_ascii=False, default=str) + "\n")
                out.flush()
                tally.add(cell)
    except KeyboardInterrupt:
        kept = (
            f"the cells that finished are kept in {args.store}: run the same command again to go on"
            if args.store
            else "give --store FILE to keep finished cells for the next run"
        )
        print(f"\nirouter: stopped; {kept}", file=sys.stderr)
        return INTERRUPTED
    except StoreError as exc:  # --store names a file that is not a store: the caller's mistake
        fail(exc)
        return USAGE
    except errors.BudgetExceeded as exc:  # run() raises it only up front: the cap itself fails cells, as values
        print(
            f"irouter: error: the forecast expects ${exc.needed:.4f}, more than --max-cost {exc.limit:g}: nothing "
            "was sent. --dry-run shows the forecast; --force runs until the cap stops it.",
            file=sys.stderr,
        )
        return BUDGET
    except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
        return fail(exc)
    if not args.no_stats:
        print(tally.table(), file=sys.stderr)
    return tally.code


def read_prompts(source: str) -> list[Any]:
    """The prompts of ``irouter grid``: JSON lines (a ``.jsonl``/``.ndjson`` file, or ``-`` whose first line
    starts with ``{`` or ``"``) -- each a JSON string or ``{"prompt": ..., "id": ...}`` -- else one prompt per
    non-empty line. Bad input raises ``ValueError`` naming the line."""
    if source == "-":
        text = sys.stdin.read()
        first = text.lstrip()[:1]
        jsonl = first in ("{", '"')
    else:
        text = Path(source).read_text(encoding="utf-8")
        jsonl = Path(source).suffix.lower() in (".jsonl", ".ndjson")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{source}: no prompts in it")
    if not jsonl:
        return [line for _, line in lines]
    return [_row(source, n, line) for n, line in lines]


def _row(source: str, number: int, line: str) -> Any:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{source}, line {number}: not JSON ({exc})") from None
    if isinstance(row, str):
        return row
    if not isinstance(row, dict) or "prompt" not in row:
        raise ValueError(f'{source}, line {number}: a row must be a JSON string or {{"prompt": ..., "id": ...}}')
    unknown = set(row) - {"prompt", "id"}
    if unknown:
        raise ValueError(f"{source}, line {number}: unknown key(s) {', '.join(sorted(unknown))} (rows have prompt, id)")
    return row if "id" in row else row["prompt"]


def make_grid(args: argparse.Namespace, prompts: list[Any]) -> Any:
    """The library's grid for ``irouter grid``'s flags (every check it makes happens before anything is sent)."""
    from .call import Call

    models = default_models(args.model, args.base_url)
    system = args.system if args.system is not None else config().get("system", "")
    options = parse_options(args.option)
    if args.no_check:
        options["check_capabilities"] = False
    call: Call[Any] = Call(models, system=system, api_key=api_key(args), base_url=args.base_url)
    return call.grid(
        prompts,
        store=args.store,
        max_cost=args.max_cost,
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        retry_failed=not args.no_retry,
        force=args.force,
        **({"deferred": args.deferred == "all" or args.deferred} if args.deferred else {}),
        **options,
    )


@contextlib.contextmanager
def _opened(path: str | None) -> Any:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as out:
        yield out


class _Tally:
    """Per model: cells, failures, dollars and latency of a grid run, for the summary and the exit code."""

    def __init__(self, models: list[str]) -> None:
        self.rows: dict[str, list[float]] = {m: [0, 0, 0.0, 0.0, 0] for m in models}
        """Per model, in ``-m`` order: [cells, failed, cost, latency sum, from store]."""
        self.code = OK

    def add(self, cell: Any) -> None:
        row = self.rows[cell.model]
        row[0] += 1
        row[2] += cell.cost or 0.0
        row[3] += cell.latency or 0.0
        row[4] += bool(cell.from_store)
        if cell.error is not None:
            row[1] += 1
            self.code = max(self.code, cell_code(cell.error))

    def table(self) -> str:
        lines = [("model", "cells", "failed", "from store", "cost", "mean latency")]
        for model, (cells, failed, cost, latency, stored) in self.rows.items():
            mean = f"{latency / cells:.2f} s" if cells else "-"
            lines.append((model, f"{cells:g}", f"{failed:g}", f"{stored:g}", f"${cost:.6f}", mean))
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        return "\n".join(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines
        )


def cell_code(error: Any) -> int:
    """The exit code a failed cell stands for (its error's class, by name, else its HTTP status). A cell can not
    fail for a usage error -- those are raised before anything is sent -- so those count as other errors."""
    kind = getattr(errors, str(error.type), None)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        kind = errors.status_error_class(error.status) if error.status else errors.IrouterError
    code = class_code(kind)
    return FAILED if code == USAGE else code


def _money(value: float | None) -> str:
    return "?" if value is None else ("free" if value == 0 else f"{value:g}")


HELP = """commands:
  /reset           start over (history back to the system prompt)
  /save PATH       save the conversation          /load PATH   load one
  /cost            tokens and dollars so far      /models      the models in use
  /model SLUG      switch to this model           /add SLUG    add a model
  /system TEXT     set the system prompt          /exit        quit (or Ctrl-D)
Ctrl-C stops an answer; the conversation stays as it was before it."""


def chat_command(argv: list[str], stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="irouter chat", description="An interactive conversation.")
    common(parser)
    parser.add_argument(
        "--continue",
        dest="resume",
        nargs="?",
        const="",
        metavar="ID",
        help="go on with a logged conversation (the most recent without ID; `irouter logs` lists them)",
    )
    args = parser.parse_args(argv)
    load_env()
    try:
        chat, key = (make_chat(args) if args.resume is None else resumed(args)), api_key(args)
    except (errors.IrouterError, TypeError, ValueError) as exc:
        return fail(exc)
    _readline()
    printer = Printer(stats=not args.no_stats)
    print(f"Chatting with {', '.join(chat.models)}. /help for commands, Ctrl-D to quit.", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return OK
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            try:
                chat, done = command(chat, line, printer, key, budget(args))
            except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
                fail(exc)
                continue
            if done:
                return OK
            continue
        waiting = _waiting(chat)
        if waiting:  # the library would refuse the message, in Python's words
            print(f"irouter: error: {waiting}", file=sys.stderr)
            continue
        try:
            printer.stream(chat, line)
        except KeyboardInterrupt:
            print("\n(stopped; the conversation is as it was before this message)", file=sys.stderr)
        except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
            fail(exc, chat.models)


def resumed(args: argparse.Namespace) -> Chat[Any]:
    """``irouter chat --continue [ID]``: the logged conversation, with its models and options (``-o`` adds)."""
    if args.model or args.system is not None or args.no_log:
        raise ValueError("--continue goes on with the logged conversation as it was: drop -m, -s and --no-log")
    options = parse_options(args.option)
    if args.no_check:
        options["check_capabilities"] = False
    try:
        chat: Chat[Any] = Chat.resume(
            args.resume or None, api_key=api_key(args), base_url=args.base_url, **budget(args), **options
        )
    except (KeyError, FileNotFoundError) as exc:
        raise ValueError(exc.args[0] if exc.args else str(exc)) from None
    print(f"(continuing {chat.log_id}: {chat.turns} turns)", file=sys.stderr)
    return chat


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--max-cost`` and ``--allow-unpriced`` set, for a chat loaded during the session to keep."""
    given = {"max_cost": args.max_cost} if args.max_cost is not None else {}
    return {**given, "allow_unpriced": True} if args.allow_unpriced else given


def command(
    chat: Chat[Any], line: str, printer: Printer, key: str | None = None, limits: dict[str, Any] | None = None
) -> tuple[Chat[Any], bool]:
    """Run one ``/command``; returns the (possibly new) chat and whether to quit. ``key`` is ``--api-key-env``'s
    key, which a loaded or changed chat keeps using; ``limits`` (`budget`) the command line's budget, which a
    loaded chat keeps too (it counts what the file says was spent)."""
    name, _, rest = line.partition(" ")
    rest = rest.strip()
    if name in ("/exit", "/quit"):
        return chat, True
    if name == "/help":
        print(HELP, file=sys.stderr)
    elif name == "/reset":
        chat.reset_history()
        print("(history cleared)", file=sys.stderr)
    elif name == "/save":
        print(f"(saved to {chat.save(rest or 'chat.json')})", file=sys.stderr)
    elif name == "/load":
        loaded: Chat[Any] = Chat.load(rest or "chat.json", api_key=key, log=chat.log_path or False, **(limits or {}))
        chat = loaded
        print(f"(loaded: {', '.join(chat.models)}, {chat.turns} turns)", file=sys.stderr)
        waiting = _waiting(chat)
        if waiting:
            print(f"irouter: note: {waiting}", file=sys.stderr)
    elif name == "/cost":
        printer_stats = Printer(out=printer.out, err=printer.err, stats=True)
        printer_stats._stats(chat, None)
    elif name == "/models":
        print(", ".join(chat.models), file=sys.stderr)
    elif name in ("/model", "/add"):
        if not rest:
            raise ValueError(f"{name} needs a model slug")
        chat = _with_models(chat, [rest] if name == "/model" else [*chat.models, rest], key)
        print(f"(now: {', '.join(chat.models)})", file=sys.stderr)
    elif name == "/system":
        chat.system = rest or None
        chat.reset_history()
        print("(system prompt set; history restarted)", file=sys.stderr)
    else:
        raise ValueError(f"unknown command {name}; /help lists them")
    return chat, False


def _waiting(chat: Chat[Any]) -> str | None:
    """What a chat whose model waits for tool results (saved that way by a program) says in the CLI, which cannot
    give them; ``None`` when nothing waits."""
    pending = chat.pending_tool_calls
    per_model = pending if isinstance(pending, dict) else {chat.models[0]: pending}
    waiting = {m: calls for m, calls in per_model.items() if calls}
    if not waiting:
        return None
    shown = "; ".join(
        (f"{m}: " if len(chat.models) > 1 else "") + ", ".join(f"{c.name} (id {c.id})" for c in calls)
        for m, calls in waiting.items()
    )
    return (
        f"the conversation waits for the results of tool calls ({shown}), which irouter chat cannot give; "
        "/reset starts it over (or answer them in Python with chat.answer_tool_calls)"
    )


def _with_models(chat: Chat[Any], models: list[str], key: str | None = None) -> Chat[Any]:
    """A chat on ``models`` that keeps the conversation: models already there keep theirs, new ones get the first
    model's history."""
    first = chat.history if len(chat.models) == 1 else chat.history[chat.models[0]]
    old = dict.fromkeys(chat.models, chat.history) if len(chat.models) == 1 else dict(chat.history)
    data = chat.to_dict()
    data["models"] = models
    data["history"] = {m: old.get(m, first) for m in models}  # the ledger stays: spending counts for max_cost
    changed: Chat[Any] = Chat.from_dict(data, api_key=key, log=chat.log_path or False, **_unsaved(chat))
    return changed


def _unsaved(chat: Chat[Any]) -> dict[str, Any]:
    """The options `to_dict` leaves out (functions, secret headers: ``"extra_headers['Authorization']"``)."""
    unsaved = chat.to_dict()["unsaved_options"]
    return {k: v for k, v in chat.defaults.items() if k in unsaved or any(u.startswith(f"{k}[") for u in unsaved)}


def _readline() -> None:
    """Line editing and a persistent input history, where the platform has readline."""
    try:
        import readline
    except ImportError:
        return
    path = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "irouter" / "history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
        import atexit

        atexit.register(readline.write_history_file, path)
    except OSError:
        pass


def batches_command(argv: list[str]) -> int:
    """``irouter batches``: the account's Batch API batches (or those a deferred grid's ``--store`` keeps)."""
    parser = argparse.ArgumentParser(
        prog="irouter batches",
        description="OpenRouter Batch API batches (what deferred grids submit): list them, show one, delete one.",
    )
    parser.add_argument("action", nargs="?", default="list", choices=("list", "show", "delete"))
    parser.add_argument("id", nargs="?", help="the batch id (show, delete)")
    parser.add_argument("--store", help="list the batches this grid store keeps, with their cells and last status")
    parser.add_argument("--results", action="store_true", help="show: include the results of a completed batch")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--base-url", help="OpenRouter's base URL (default: OPENROUTER_BASE_URL, else OpenRouter)")
    parser.add_argument("--api-key-env", metavar="NAME", help="the environment variable holding the key")
    args = parser.parse_args(argv)
    load_env()
    if args.action != "list" and not args.id:
        parser.error(f"{args.action} needs a batch id (irouter batches lists them)")
    from . import _deferred

    try:
        if args.action == "list" and args.store:
            rows = _deferred.stored_batches(args.store)
        elif args.action == "list":
            rows = _deferred.list_batches(args.base_url, api_key(args))
        elif args.action == "show":
            shown = _deferred.get_batch(args.base_url, api_key(args), args.id, args.results)
            print(json.dumps(shown, indent=1))
            return OK
        else:
            _deferred.delete_batch(args.base_url, api_key(args), args.id)
            print(f"deleted {args.id}")
            return OK
    except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
        if isinstance(exc, errors.APIStatusError) and exc.status == 409:
            print(f"irouter: error: {args.id} is still running: only a finished batch can be deleted", file=sys.stderr)
            return FAILED
        return fail(exc)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print("irouter: no batches", file=sys.stderr)
    else:
        for row in rows:
            print("  ".join(str(row.get(k, "")) for k in ("id", "status", "model", "cells", "created")))
    return OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["chat"]:
            return chat_command(argv[1:])
        if argv[:1] == ["models"]:
            return models_command(argv[1:])
        if argv[:1] == ["grid"]:
            return grid_command(argv[1:])
        if argv[:1] == ["compare"]:
            from ._cli_compare import compare_command

            return compare_command(argv[1:])
        if argv[:1] in (["logs"], ["cache"]):
            from ._logs_cli import cache_command, logs_command

            return (logs_command if argv[0] == "logs" else cache_command)(argv[1:])
        if argv[:1] == ["providers"]:
            return providers_command(argv[1:])
        if argv[:1] == ["batches"]:
            return batches_command(argv[1:])
        return prompt_command(argv)
    except BrokenPipeError:  # the reader went away (`irouter ... | head`): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except KeyboardInterrupt:  # before any turn started (e.g. while reading piped input)
        print("\nirouter: stopped", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
