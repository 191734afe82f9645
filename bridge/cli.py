"""The ``callbridge`` command: ``serve`` runs the server, ``simulate`` places a test call,
``keys`` manages API keys, ``campaign status`` shows dialer campaigns' progress."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__
from bridge.agents.loader import ORGANIZATION_ID
from bridge.api.asgi import configure_logging
from bridge.api.keys import issue_key
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.journal.campaigns import Aggregates, CampaignStore
from bridge.journal.control import ControlStore
from bridge.journal.models import DEFAULT_ORG, SCOPES
from bridge.journal.store import JournalError, JournalStore, NotFound
from bridge.secrets import SecretBox
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
    add_keys_parser(sub)
    campaign = sub.add_parser("campaign", help="dialer campaigns (reads the configured database)")
    campaign_actions = campaign.add_subparsers(dest="campaign_command", required=True)
    status = campaign_actions.add_parser("status", help="progress of the organization's campaigns")
    status.add_argument("campaign_id", nargs="?", help="one campaign (default: all)")
    status.add_argument("--org", default=DEFAULT_ORG)
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
    if args.command == "keys":
        return keys_command(args)
    if args.command == "campaign":
        return campaign_command(args)
    return asyncio.run(simulate_cli.run_simulate(args))  # "simulate": argparse allows no other


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser(
        "keys",
        help="API keys: create, list, revoke (works on the configured database directly)",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--org", default=DEFAULT_ORG, help="organization id (created if new)")
    create.add_argument("--scope", choices=SCOPES, default="admin")
    create.add_argument("--name", default="cli", help="what the key is for")
    listing = actions.add_parser("list", help="list an organization's keys (never the keys)")
    listing.add_argument("--org", default=DEFAULT_ORG)
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.add_argument("--org", default=DEFAULT_ORG)
    actions.add_parser("secret", help="print a new secret key for CALLBRIDGE_SECRET_KEY")


def keys_command(args: argparse.Namespace) -> int:
    if args.keys_command == "secret":
        print(SecretBox.generate_key())
        return 0
    if args.keys_command != "list" and not ORGANIZATION_ID.fullmatch(args.org):
        print(f"callbridge keys: --org must match {ORGANIZATION_ID.pattern}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(os.environ)
        return asyncio.run(_keys(args, settings))
    except (ConfigError, JournalError) as exc:
        print(f"callbridge keys: {exc}", file=sys.stderr)
        return 1


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    store = await JournalStore.open(settings.database_url)
    control = ControlStore(store)
    try:
        if args.keys_command == "create":
            row, key = await issue_key(control, args.org, name=args.name, scope=args.scope)
            print(key)
            print(f"id {row.id}, organization {row.org_id}, scope {row.scope}", file=sys.stderr)
        elif args.keys_command == "list":
            for row in await control.list_keys(args.org):
                state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
                print(
                    f"{row.id}  {row.scope:<5}  …{row.last4}  {state:<18} used {used}  {row.name}"
                )
        else:
            try:
                row = await control.revoke_key(args.org, args.key_id)
            except NotFound:
                print(f"callbridge keys: no key {args.key_id} in {args.org}", file=sys.stderr)
                return 1
            print(f"revoked {row.id}")
        return 0
    finally:
        await store.close()


def campaign_command(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(os.environ)
        return asyncio.run(_campaign_status(args, settings))
    except (ConfigError, JournalError) as exc:
        print(f"callbridge campaign: {exc}", file=sys.stderr)
        return 1


async def _campaign_status(args: argparse.Namespace, settings: Settings) -> int:
    store = await JournalStore.open(settings.database_url)
    campaigns = CampaignStore(store, ControlStore(store))
    try:
        if args.campaign_id:
            try:
                rows = [await campaigns.get(args.org, args.campaign_id)]
            except NotFound:
                print(f"callbridge campaign: no campaign {args.campaign_id}", file=sys.stderr)
                return 1
        else:
            rows = await campaigns.all(args.org)
        if not rows:
            print(f"no campaigns in {args.org}")
        for row in rows:
            for line in campaign_lines(
                row.id, row.name, row.status, await campaigns.aggregates(row.id)
            ):
                print(line)
        return 0
    finally:
        await store.close()


def progress_bar(part: int, whole: int, width: int = 30) -> str:
    """``[#########·····················]  30%`` (whole 0: an empty bar at 0%)."""
    share = part / whole if whole else 0.0
    filled = round(share * width)
    return f"[{'#' * filled}{'·' * (width - filled)}] {share:4.0%}"


def campaign_lines(campaign_id: str, name: str, status: str, totals: Aggregates) -> list[str]:
    """A campaign's progress for a terminal: finished numbers, and successes among them."""
    minutes, seconds = divmod(round(totals.total_duration_secs), 60)
    return [
        f"{name}  ({campaign_id}, {status})",
        f"  done     {progress_bar(totals.finished, totals.numbers)}  "
        f"{totals.finished}/{totals.numbers} numbers, {totals.dialing} dialing, "
        f"{totals.pending} to go",
        f"  success  {progress_bar(totals.success, totals.numbers)}  "
        f"{totals.success} reached, {totals.failed} failed, {totals.skipped} skipped; "
        f"{totals.attempts} calls, {minutes}m{seconds:02d}s talking",
    ]


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
