"""`speechkd serve --model REF`: a local web page that transcribes the microphone live over a WebSocket."""

from __future__ import annotations

import argparse
from pathlib import Path

from speechkd.commands import add_device_flags, quiet_transformers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="browser demo: live microphone transcription over a WebSocket",
        description=(
            "Serve a page (http://HOST:PORT/) that captures the microphone, streams 16 kHz audio over a "
            "WebSocket (/ws) and shows partial (grey) and committed (black) text with live word latency. "
            "Listens on localhost only unless --host says otherwise. Needs the `websockets` package "
            "(pip install 'speechkd[serve]')."
        ),
    )
    parser.add_argument("--model", default=None, help="local dir, hub id, or bundled:tiny.en / bundled:base")
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML/JSON file; section `serve` (flags win)"
    )
    parser.add_argument("--host", default=None, help="interface to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (8000; 0 picks a free one)")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="new audio per update (1.0)")
    parser.add_argument("--language", default=None, help="language code for multilingual models, e.g. en")
    parser.add_argument("--max-clients", type=int, default=None, help="simultaneous sessions (4)")
    parser.add_argument(
        "--idle-seconds", type=float, default=None, help="close a session that sends no audio this long (10)"
    )
    parser.add_argument(
        "--max-session-seconds", type=float, default=None, help="audio per session before it is closed (600)"
    )
    parser.add_argument(
        "--max-message-bytes", type=int, default=None, help="largest WebSocket message accepted (65536)"
    )
    add_device_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.config import build_config, load_config_file

    file_values = load_config_file(args.config, section="serve") if args.config else {}
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise ValueError(
            "`speechkd serve` needs the websockets package: pip install 'speechkd[serve]'"
        ) from None
    from speechkd.streaming.serve import ServerConfig, run_server

    source = f"{args.config} [serve]" if args.config else "serve"
    config = build_config(ServerConfig, file_values, vars(args), source=source)
    quiet_transformers()
    run_server(config)
    return 0
