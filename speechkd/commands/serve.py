"""`speechkd serve --model REF`: a local web page that transcribes the microphone live over a WebSocket."""

from __future__ import annotations

import argparse

from speechkd.commands import add_device_flags


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
    parser.add_argument("--model", required=True, help="local dir, hub id, or bundled:tiny.en / bundled:base")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (8000; 0 picks a free one)")
    parser.add_argument("--chunk-seconds", type=float, default=1.0, help="new audio per update (1.0)")
    parser.add_argument("--language", default=None, help="language code for multilingual models, e.g. en")
    parser.add_argument("--max-clients", type=int, default=4, help="simultaneous sessions (4)")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="close a session that sends no audio this long (10)"
    )
    parser.add_argument(
        "--max-session-seconds", type=float, default=600.0, help="audio per session before it is closed (600)"
    )
    parser.add_argument(
        "--max-message-bytes", type=int, default=65536, help="largest WebSocket message accepted (65536)"
    )
    add_device_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from speechkd.commands import quiet_transformers

    try:
        import websockets  # noqa: F401
    except ImportError:
        raise ValueError(
            "`speechkd serve` needs the websockets package: pip install 'speechkd[serve]'"
        ) from None
    from speechkd.streaming.serve import ServerConfig, run_server
    from speechkd.streaming.transcriber import StreamingConfig

    quiet_transformers()
    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_message_bytes=args.max_message_bytes,
        max_session_seconds=args.max_session_seconds,
        max_clients=args.max_clients,
        idle_seconds=args.idle_seconds,
        streaming=StreamingConfig(chunk_seconds=args.chunk_seconds, language=args.language),
    )
    run_server(args.model, config, device=args.device, dtype=args.dtype or "float32")
    return 0
