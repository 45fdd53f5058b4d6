"""``irouter compare``: ask several models one question, then print their answers and a table of rank, score, cost
and latency per model (ranked by ``--judge`` models with `Chat.review`). A thin layer: `Chat` does the work."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import errors
from .cli import FAILED, INTERRUPTED, OK, USAGE, Printer, common, describe, exit_code, fail, load_env, make_chat
from .review import Review, dollars


def compare_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="irouter compare",
        description="Ask several models at once, then compare: answers, rank and score (with --judge), cost, latency.",
    )
    parser.add_argument("prompt", nargs="*", help="the question (stdin, when piped and no prompt is given)")
    parser.add_argument(
        "--judge", action="append", default=[], help="a model that scores the answers; repeat for a panel"
    )
    parser.add_argument("--criteria", help="what the judges should look for (default: correctness, then helpfulness)")
    parser.add_argument("--names", action="store_true", help="show the judges the model names (default: blind)")
    parser.add_argument("--no-swap", action="store_true", help="judge once, not a second time in reverse order")
    parser.add_argument("--synthesize", metavar="MODEL", help="also have MODEL write one answer from all of them")
    parser.add_argument("--json", action="store_true", help="print answers, table, review and cost as JSON")
    common(parser)
    args = parser.parse_args(argv)
    load_env()
    text = " ".join(args.prompt)
    if not text.strip() and not sys.stdin.isatty():
        text = sys.stdin.read()
    if not text.strip():
        parser.error("give a prompt (or pipe one in)")
    if len(args.model or []) < 2:
        parser.error("compare needs at least two models: -m A -m B")
    try:
        chat = make_chat(args)
        answers, failed = ask(chat, text)
        review = None
        if args.judge and answers:
            review = chat.review(args.judge, args.criteria, blind=not args.names, swap=not args.no_swap)
        synthesis, unsynthesized = None, None
        if args.synthesize and answers:
            try:
                synthesis = chat.synthesize(args.synthesize)
            except errors.APIError as exc:  # the answers were paid for: they are shown all the same
                unsynthesized = exc
    except KeyboardInterrupt:
        print("\nirouter: stopped", file=sys.stderr)
        return INTERRUPTED
    except (errors.IrouterError, TypeError, ValueError, OSError) as exc:
        return fail(exc)
    rows = table_rows(chat, review, failed)
    if args.json:
        report = {
            "answers": answers,
            "errors": {m: {"message": describe(e), "type": type(e).__name__} for m, e in failed.items()},
            "models": rows,
            "review": review.to_dict() if review is not None else None,
            "synthesis": synthesis,
            **({"synthesis_error": describe(unsynthesized)} if unsynthesized is not None else {}),
            "cost": dollars(chat.ledger),
        }
        print(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    else:
        show(Printer(stats=False), chat, answers, rows, review, synthesis)
    if failed:
        fail(errors.MultiModelError(answers, dict(failed)), chat.models)
    if unsynthesized is not None:
        print(f"irouter: error: --synthesize {args.synthesize}: {describe(unsynthesized)}", file=sys.stderr)
        return max(code(failed, review), exit_code(unsynthesized))
    return code(failed, review)


def ask(chat: Any, text: str) -> tuple[dict[str, str], dict[str, BaseException]]:
    """Every model's answer, and the errors of those that failed."""
    try:
        return dict(chat(text)), {}
    except errors.MultiModelError as exc:
        return dict(exc.answers), dict(exc.errors)


def table_rows(chat: Any, review: Review | None, failed: dict[str, BaseException]) -> list[dict[str, Any]]:
    """One row per model, in ``-m`` order: rank, score and reason (when judged), cost, latency and tokens of its
    turn (the judges' requests are not in it)."""
    ranked = {r.model: r for r in review.ranking} if review is not None else {}
    rows = []
    for model in chat.models:
        turn = [e for e in chat.ledger if e.model == model and e.purpose is None]
        place = ranked.get(model)
        rows.append(
            {
                "model": model,
                "rank": place.rank if place else None,
                "score": place.score if place else None,
                "reason": place.reason if place else None,
                "cost": dollars(turn),
                "latency": sum(e.latency for e in turn) if turn else None,
                "tokens": sum(e.total_tokens for e in turn),
                "error": describe(failed[model]) if model in failed else None,
            }
        )
    return rows


def cells(row: dict[str, Any], judged: bool) -> list[str]:
    money = "?" if row["cost"] is None else f"${row['cost']:.6f}"
    latency = "-" if row["latency"] is None else f"{row['latency']:.2f} s"
    out = [row["model"], money, latency, str(row["tokens"])]
    if judged:
        rank = "-" if row["rank"] is None else str(row["rank"])
        score = "-" if row["score"] is None else f"{row['score']:.2f}"
        out = [rank, *out[:1], score, *out[1:], row["reason"] or ("failed" if row["error"] else "")]
    elif row["error"]:
        out.append("failed")
    return out


def show(
    printer: Printer,
    chat: Any,
    answers: dict[str, str],
    rows: list[dict[str, Any]],
    review: Review | None,
    synthesis: str | None,
) -> None:
    printer.markdown("\n\n".join(f"## {m}\n\n{answers[m]}" for m in chat.models if m in answers))
    if synthesis is not None:
        printer.markdown(f"\n## synthesis\n\n{synthesis}")
    judged = review is not None
    head = (
        ["rank", "model", "score", "cost", "latency", "tokens", "reason"]
        if judged
        else ["model", "cost", "latency", "tokens"]
    )
    body = [cells(row, judged) for row in sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0))]
    if not judged and any(row["error"] for row in rows):  # a column for the "failed" of the models that did
        head.append("")
        body = [line if len(line) == len(head) else [*line, ""] for line in body]
    out = printer.out
    if printer.rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(*head)
        for line in body:
            table.add_row(*line)
        Console(file=out).print(table)
    else:
        out.write("\n" + plain_table([head, *body]) + "\n")
    if review is not None:
        judges = str(review).splitlines()[len(review.ranking) + 1 :]
        out.write("\n".join(judges) + "\n")
    total = dollars(chat.ledger)
    out.write(f"total {'cost unknown' if total is None else f'${total:.6f}'}\n")
    out.flush()


def plain_table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)), line[-1]]).rstrip() for line in lines
    )


def code(failed: dict[str, BaseException], review: Review | None) -> int:
    """The exit code: the worst of the models' failures and the judges' (a judge cannot fail for a usage error:
    those are raised before anything is sent)."""
    codes = [exit_code(e) for e in failed.values()]
    if review is not None:
        codes += [FAILED if exit_code(v.error) == USAGE else exit_code(v.error) for v in review.errors if v.error]
    return max(codes, default=OK)
