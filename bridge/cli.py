"""The ``callbridge`` command: ``serve`` runs the server, ``simulate`` places a test call."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__
from bridge.api.asgi import configure_logging
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.simulate import cli as simulate_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bridge server")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes, one per core (default 1)")
    serve.add_argument("--log-level", default=None, help="debug, info, warning, error")
    simulate_cli.add_parser(sub)
    bench = sub.add_parser(
        "bench",
        help="run the benchmark (from a source checkout: bench/)",
        add_help=False,
        prefix_chars="\0",  # every argument goes to bench.run untouched
    )
    bench.add_argument("bench_args", nargs="*")

    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        return bench_command([*args.bench_args, *rest])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "serve":
        return serve_command(args)
    return asyncio.run(simulate_cli.run_simulate(args))  # "simulate": argparse allows no other


def bench_command(argv: list[str]) -> int:
    """``python -m bench.run`` from the checkout in the current directory."""
    if not Path("bench/run.py").is_file():
        print(
            "callbridge bench: run it from a callbridge source checkout (bench/ is not installed "
            "with the package)",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, os.getcwd())
    bench_run = importlib.import_module("bench.run")  # not part of the installed package
    result: int = bench_run.main(argv)
    return result


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"callbridge: {exc}", file=sys.stderr)
        return 2
    overrides = {"host": args.host, "port": args.port, "workers": args.workers}
    settings = settings.with_(**{k: v for k, v in overrides.items() if v is not None})
    level = (args.log_level or settings.log_level).lower()
    configure_logging(level)
    # Workers re-read the environment: pass the CLI's choices down that way.
    os.environ["CALLBRIDGE_HOST"] = settings.host
    os.environ["CALLBRIDGE_PORT"] = str(settings.port)
    os.environ["CALLBRIDGE_LOG_LEVEL"] = level
    uvicorn.run(
        "bridge.api.asgi:build",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        loop="uvloop",
        http="httptools",
        log_level=level,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
