"""`python -m bot emulator`: serve the Palabra-compatible emulator (REST + WebSocket on one port).

Point the bot at it with `PALABRA_API_URL=http://HOST:PORT` and one of the accepted credentials.
With no `--client`/`--api-key`, one local test credential of each kind is generated and written to a
file only its owner can read (`--credentials-file`), and reused from it on later starts; only the
file's path is printed, never the values. `--realism SEED` makes the emulator time and shape its
output like a real pipeline (realism.py), reproducibly for a seed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.palabra.emulator.config import EmulatorConfig
    from bot.palabra.emulator.local_credentials import LocalCredentials

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    net.add_argument("--port", type=int, default=8765, help="port to bind, 0 = any free port (default: 8765)")

    creds = parser.add_argument_group("credentials (local test values; generated when none are given)")
    creds.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET",
        help="accept this ClientID/ClientSecret pair (repeatable)",
    )
    creds.add_argument(
        "--api-key", action="append", default=[], metavar="KEY", help="accept this platform API key (repeatable)"
    )
    creds.add_argument(
        "--credentials-file",
        default="emulator-credentials.env",
        metavar="PATH",
        help="where generated credentials are kept, mode 0600, and reused from on the next start "
        "(default: emulator-credentials.env)",
    )

    dialect = parser.add_argument_group("protocol dialect")
    dialect.add_argument(
        "--no-ack", action="store_true", help="do not push task_status after set_task (clients must poll get_task)"
    )
    dialect.add_argument(
        "--eos", action="store_true", help="answer end_task with 'eos' (docs, SDK <= 2.1.0) instead of 'end_of_stream'"
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-parallel-sessions", type=_positive_int, default=10, metavar="N")
    limits.add_argument("--session-ttl", type=_positive_float, default=3600.0, metavar="SECONDS")
    limits.add_argument(
        "--audio-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="SERVICE_TIMEOUT + close 1008 after this long without audio (default: 10)",
    )
    limits.add_argument("--ws-connections-per-minute", type=_positive_int, default=20, metavar="N")
    limits.add_argument(
        "--no-command-rate-limits",
        action="store_true",
        help="do not enforce set_task/get_task/pause_task/end_task intervals",
    )
    limits.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="expect audio X times faster than real time",
    )

    realism = parser.add_argument_group("realism (seeded, reproducible)")
    realism.add_argument(
        "--realism",
        type=int,
        default=None,
        metavar="SEED",
        help="time and shape results like a real pipeline: delays, any result order, translations in parts, "
        "audio bursts, duplicate and unknown messages, AUDIO_STREAM_STALLED (default: off, fixed order)",
    )
    realism.add_argument(
        "--realism-delay",
        type=_delay_range,
        default=(0.0, 7.0),
        metavar="MIN:MAX",
        help="range of the per-utterance pipeline delay in seconds (default: 0:7)",
    )

    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--drop-after",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="close WebSocket connections abruptly this long after set_task",
    )
    faults.add_argument(
        "--drop-count", type=int, default=0, metavar="N", help="how many connections to drop (0 = every one)"
    )
    faults.add_argument("--rest-fail-first", type=int, default=0, metavar="K", help="fail the first K REST calls")
    faults.add_argument(
        "--rest-fail-status",
        type=_http_error_status,
        default=503,
        metavar="STATUS",
        help="status of those failures (429 adds Retry-After: 1; default: 503)",
    )
    faults.add_argument(
        "--processing-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="extra delay before each utterance's results",
    )


def main(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging

    setup_logging("INFO")
    config, local = build_config(args)
    try:
        asyncio.run(_serve_until_stopped(config, args.host, args.port, local, args.credentials_file))
    except KeyboardInterrupt:
        pass
    return 0


def build_config(args: argparse.Namespace) -> tuple[EmulatorConfig, LocalCredentials | None]:
    """EmulatorConfig from the flags, plus the local credentials used when none were given."""
    from bot.errors import ConfigurationError
    from bot.logs import register_secret
    from bot.palabra.emulator.config import EmulatorConfig
    from bot.palabra.emulator.local_credentials import load_or_generate

    clients: dict[str, str] = {}
    for pair in args.client:
        client_id, sep, client_secret = pair.partition(":")
        if not sep or not client_id or not client_secret:
            raise ConfigurationError("--client takes ID:SECRET with both parts non-empty")
        clients[client_id] = client_secret
    api_keys = set(args.api_key)
    if any(not key.strip() for key in api_keys):
        raise ConfigurationError("--api-key must not be empty")
    local = None
    if not clients and not api_keys:
        local = load_or_generate(args.credentials_file)
        clients[local.client_id] = local.client_secret
        api_keys.add(local.api_key)
    for secret in [*clients.values(), *api_keys]:
        register_secret(secret)
    config = EmulatorConfig(
        ack_task_status=not args.no_ack,
        end_message="eos" if args.eos else "end_of_stream",
        client_credentials=clients,
        api_keys=api_keys,
        max_parallel_sessions=args.max_parallel_sessions,
        session_ttl_s=args.session_ttl,
        audio_timeout_s=args.audio_timeout,
        ws_connections_per_minute=args.ws_connections_per_minute,
        enforce_command_rate_limits=not args.no_command_rate_limits,
        time_scale=args.time_scale,
        drop_after_s=args.drop_after,
        drop_count=args.drop_count,
        rest_fail_first=args.rest_fail_first,
        rest_fail_status=args.rest_fail_status,
        processing_delay_s=args.processing_delay,
        realism=args.realism,
        realism_delay_s=args.realism_delay,
    )
    return config, local


async def _serve_until_stopped(
    config: EmulatorConfig, host: str, port: int, local: LocalCredentials | None, credentials_file: str
) -> None:
    from bot.palabra.emulator.app import serve
    from bot.palabra.emulator.rest import STREAM_PATH

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not available on this platform
            pass
    async with serve(config, host=host, port=port) as emulator:
        log.info(
            "Palabra emulator listening on %s (REST) and %s%s (WebSocket); Ctrl-C to stop",
            emulator.base_url,
            emulator.ws_base_url,
            STREAM_PATH,
        )
        log.info(
            "accepting %d client credential pair(s) and %d API key(s)",
            len(config.client_credentials),
            len(config.api_keys),
        )
        if config.realism is not None:
            low, high = config.realism_delay_s
            log.info("realism on: seed %d, pipeline delays %g-%g s", config.realism, low, high)
        if local:
            _write_local(credentials_file, emulator.base_url, local)
        await stop.wait()
        log.info("Palabra emulator stopping")


def _write_local(path: str, base_url: str, local: LocalCredentials) -> None:
    import os

    from bot.palabra.emulator.local_credentials import write

    write(path, local, base_url)
    where = os.path.abspath(path)
    if local.reused:
        print(f"No credentials were given: reusing the local test credentials in {where}", flush=True)
    else:
        print(f"No credentials were given: local test credentials for this run are in {where}", flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _http_error_status(text: str) -> int:
    value = int(text)
    if not 400 <= value <= 599:
        raise argparse.ArgumentTypeError("must be an HTTP error status from 400 to 599")
    return value


def _delay_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        values = (float(low), float(high))
    except ValueError:
        values = (-1.0, -1.0)
    if not sep or not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError("must be MIN:MAX seconds with 0 <= MIN <= MAX, e.g. 0:7")
    return values
