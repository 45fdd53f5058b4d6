"""``python -m irouter.testing [--port N] [--latency S]``: run the OpenRouter double until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time

from ._server import DEFAULT_KEY, OpenRouterDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m irouter.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each completion takes")
    parser.add_argument("--any-key", action="store_true", help="accept any bearer key")
    args = parser.parse_args(argv)
    double = OpenRouterDouble(
        host=args.host, port=args.port, latency=args.latency, api_key=None if args.any_key else DEFAULT_KEY
    )
    double.start()
    print(f"OPENROUTER_BASE_URL={double.base_url}", flush=True)
    print(f"OPENROUTER_API_KEY={double.api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
