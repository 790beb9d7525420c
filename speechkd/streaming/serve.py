"""A local web demo of streaming transcription: one page captures the microphone and streams it over a WebSocket.

Protocol on `/ws`: the client sends `{"type": "start", "sample_rate": 16000, "format": "f32"|"s16"}`, then
binary little-endian PCM messages, then `{"type": "stop"}`. The server answers `ready`, then `update`
messages (newly committed words with their latency, the partial text) and a `final` one with statistics.
Each connection owns its transcriber; model calls run one at a time in a single worker thread. A frame with
non-finite samples (NaN, inf) or float samples beyond ±MAX_ABS_SAMPLE ends the session with an `error` message
and close code 1007; a session that sends no audio for `idle_seconds` is closed with 1008 to free its slot.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from importlib import resources
from urllib.parse import urlsplit

import numpy as np

from speechkd.audio import SAMPLE_RATE
from speechkd.config import check_types, in_range, one_of, positive, required
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES
from speechkd.streaming.config import StreamingConfig
from speechkd.streaming.transcriber import StreamingTranscriber, Update, latency_summary

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/pcm-worklet.js": ("pcm-worklet.js", "text/javascript; charset=utf-8"),
}
SAMPLE_FORMATS = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}
MAX_ABS_SAMPLE = 10.0  # float PCM lies in [-1, 1]; some headroom for hot microphones, none for garbage


@dataclass(frozen=True)
class ServerConfig:
    """The model to serve, where to listen and the limits that keep one client from starving the others."""

    SECTION = "serve"

    model: str = ""  # needed by run_server (a StreamingServer is handed its model)
    device: str | None = None
    dtype: str = DEFAULT_DTYPE
    host: str = "127.0.0.1"
    port: int = 8000
    max_message_bytes: int = 65536  # 1 s of float32 audio at 16 kHz fits; larger frames are refused
    max_session_seconds: float = 600.0  # audio per connection
    max_clients: int = 4
    idle_seconds: float = 10.0  # a session with no audio for this long is closed, freeing its slot
    streaming: StreamingConfig = field(default_factory=StreamingConfig)

    def __post_init__(self):
        check_types(self)
        one_of(self, "dtype", DTYPE_NAMES)
        in_range(self, 0, 65535, "port")
        positive(self, "max_message_bytes", "max_session_seconds", "max_clients", "idle_seconds")


class ProtocolError(Exception):
    """The client broke the protocol; the message is sent back before closing."""

    def __init__(self, message: str, code: int = 1008):
        super().__init__(message)
        self.code = code


@dataclass(eq=False)  # hashed by identity: the server keeps live sessions in a set
class Session:
    """One connection's state: its transcriber, audio not yet processed, and latency bookkeeping."""

    transcriber: StreamingTranscriber
    sample_format: np.dtype | None = None
    pending: list[np.ndarray] = field(default_factory=list)
    received: int = 0  # samples
    latencies: list[float] = field(default_factory=list)
    compute_seconds: float = 0.0
    task: asyncio.Task | None = None
    last_audio: float = field(default_factory=time.monotonic)  # when audio last arrived (idle check)

    @property
    def received_seconds(self) -> float:
        return self.received / SAMPLE_RATE

    def take_pending(self) -> np.ndarray:
        samples = np.concatenate(self.pending) if self.pending else np.zeros(0, np.float32)
        self.pending = []
        return samples

    def pending_seconds(self) -> float:
        return sum(len(p) for p in self.pending) / SAMPLE_RATE


class StreamingServer:
    """Serves the demo page and `/ws` sessions with one shared model."""

    def __init__(self, model, processor, config: ServerConfig = ServerConfig(), model_name: str = ""):
        self.model, self.processor, self.config, self.model_name = model, processor, config, model_name
        self.sessions: set[Session] = set()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speechkd-model")
        self.server = None

    async def start(self) -> int:
        """Start listening; return the bound port (useful with port 0)."""
        from websockets.asyncio.server import serve

        self.server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=self.config.max_message_bytes,
            compression=None,
        )
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _process_request(self, connection, request):
        """Plain GETs get the static page; WebSocket upgrades only on `/ws` and from this origin."""
        path = urlsplit(request.path).path
        if path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
                return connection.respond(HTTPStatus.FORBIDDEN, "cross-origin WebSocket refused\n")
            return None
        if path not in STATIC_FILES:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        name, content_type = STATIC_FILES[path]
        body = resources.files("speechkd.streaming").joinpath("static", name).read_bytes()
        response = connection.respond(HTTPStatus.OK, "")
        for header in ("Content-Type", "Content-Length"):
            del response.headers[header]
        response.headers["Content-Type"] = content_type
        response.headers["Content-Length"] = str(len(body))
        response.headers["Cache-Control"] = "no-store"
        response.body = body
        return response

    async def _handle(self, websocket) -> None:
        from websockets.exceptions import ConnectionClosed

        if len(self.sessions) >= self.config.max_clients:
            await websocket.close(1013, f"server busy: {self.config.max_clients} clients at most")
            return
        session = Session(StreamingTranscriber(self.model, self.processor, self.config.streaming))
        self.sessions.add(session)
        try:
            await websocket.send(json.dumps(self._ready_message()))
            while not await self._on_message(
                websocket, session, await self._next_message(websocket, session)
            ):
                pass
        except ProtocolError as error:
            await _send_error(websocket, str(error), error.code)
        except ConnectionClosed:
            pass  # the client vanished; `finally` frees its state
        finally:
            if session.task is not None:
                session.task.cancel()
            self.sessions.discard(session)

    async def _next_message(self, websocket, session: Session):
        """The client's next message; a session that has sent no audio for `idle_seconds` is closed."""
        remaining = self.config.idle_seconds - (time.monotonic() - session.last_audio)
        try:
            return await asyncio.wait_for(websocket.recv(), timeout=max(remaining, 0.0))
        except TimeoutError:
            raise ProtocolError(
                f"no audio for {self.config.idle_seconds:g} s: closing the idle session"
            ) from None

    def _ready_message(self) -> dict:
        return {
            "type": "ready",
            "model": self.model_name,
            "sample_rate": SAMPLE_RATE,
            "formats": sorted(SAMPLE_FORMATS),
            "chunk_seconds": self.config.streaming.chunk_seconds,
            "max_message_bytes": self.config.max_message_bytes,
            "max_session_seconds": self.config.max_session_seconds,
            "idle_seconds": self.config.idle_seconds,
        }

    async def _on_message(self, websocket, session: Session, message) -> bool:
        """Handle one client message; True when the session is over."""
        if isinstance(message, bytes):
            self._add_audio(session, message)
            if session.pending_seconds() >= self.config.streaming.chunk_seconds and session.task is None:
                session.task = asyncio.create_task(self._run_updates(websocket, session))
            return False
        request = _parse_control(message)
        if request.get("type") == "start":
            session.sample_format = _check_start(request)
            return False
        if request.get("type") == "stop":
            await self._finish(websocket, session)
            return True
        raise ProtocolError(f"unknown message type {request.get('type')!r}; expected start or stop")

    def _add_audio(self, session: Session, message: bytes) -> None:
        if session.sample_format is None:
            raise ProtocolError("send a start message before audio")
        if len(message) % session.sample_format.itemsize:
            raise ProtocolError(f"audio frame of {len(message)} bytes is not whole samples")
        samples = np.frombuffer(message, dtype=session.sample_format).astype(np.float32)
        if session.sample_format.kind == "i":
            samples /= 32768.0
        elif not np.isfinite(samples).all():
            raise ProtocolError("audio frame holds NaN or infinite samples", 1007)
        elif len(samples) and np.abs(samples).max() > MAX_ABS_SAMPLE:
            peak = float(np.abs(samples).max())
            raise ProtocolError(f"float samples must lie in [-1, 1]; this frame reaches {peak:.3g}", 1007)
        session.last_audio = time.monotonic()
        if session.received_seconds + len(samples) / SAMPLE_RATE > self.config.max_session_seconds:
            raise ProtocolError(f"session limit reached: {self.config.max_session_seconds:g} s of audio")
        session.pending.append(samples)
        session.received += len(samples)

    async def _run_updates(self, websocket, session: Session) -> None:
        """Process pending audio, one update at a time, until less than a chunk is waiting."""
        from websockets.exceptions import ConnectionClosed

        try:
            while session.pending_seconds() >= self.config.streaming.chunk_seconds:
                await self._update(websocket, session, final=False)
        except Exception as error:  # a failed model call ends this session, not the server
            if not isinstance(error, ConnectionClosed):
                await _send_error(websocket, f"transcription failed: {error}", 1011)
        finally:
            session.task = None

    async def _update(self, websocket, session: Session, final: bool) -> None:
        arrived_at, started = session.received_seconds, time.perf_counter()
        samples = session.take_pending()
        loop = asyncio.get_running_loop()
        update = await loop.run_in_executor(self.executor, _step, session.transcriber, samples, final)
        emitted_at = arrived_at + (time.perf_counter() - started)  # includes waiting for other clients
        session.compute_seconds += update.compute_seconds
        latencies = [emitted_at - w.end for w in update.committed]
        session.latencies.extend(latencies)
        await websocket.send(json.dumps(_update_message(update, latencies, session)))

    async def _finish(self, websocket, session: Session) -> None:
        if session.task is not None:
            await session.task
        await self._update(websocket, session, final=True)
        audio = session.received_seconds
        stats = {
            "type": "final",
            "text": session.transcriber.text,
            "audio_seconds": audio,
            "rtf": session.compute_seconds / audio if audio else 0.0,
            "latency": latency_summary(session.latencies),
        }
        await websocket.send(json.dumps(stats))
        await websocket.close(1000, "done")


def _step(transcriber: StreamingTranscriber, samples: np.ndarray, final: bool) -> Update:
    """Runs in the model thread: feed the audio, update, and at the end flush the partial."""
    transcriber.insert_audio(samples)
    update = transcriber.process() if transcriber.buffer_seconds > 0 else Update([], [])
    if not final:
        return update
    flushed = transcriber.finish()
    return Update(update.committed + flushed.committed, [], update.compute_seconds + flushed.compute_seconds)


def _update_message(update: Update, latencies: list[float], session: Session) -> dict:
    return {
        "type": "update",
        "committed": [asdict(w) | {"latency": round(t, 3)} for w, t in zip(update.committed, latencies)],
        "partial": update.partial_text,
        "audio_seconds": round(session.received_seconds, 3),
        "buffer_seconds": round(session.transcriber.buffer_seconds, 3),
        "compute_seconds": round(update.compute_seconds, 3),
    }


def _parse_control(message: str) -> dict:
    try:
        request = json.loads(message)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"control message is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise ProtocolError("control message must be a JSON object")
    return request


def _check_start(request: dict) -> np.dtype:
    rate = request.get("sample_rate")
    if rate != SAMPLE_RATE:
        raise ProtocolError(f"sample_rate must be {SAMPLE_RATE} (resample in the client), got {rate!r}", 1003)
    sample_format = request.get("format", "f32")
    if sample_format not in SAMPLE_FORMATS:
        raise ProtocolError(f"format must be one of {sorted(SAMPLE_FORMATS)}, got {sample_format!r}", 1003)
    return SAMPLE_FORMATS[sample_format]


async def _send_error(websocket, message: str, code: int) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        await websocket.send(json.dumps({"type": "error", "message": message}))
        await websocket.close(code, message[:120])
    except ConnectionClosed:
        pass


def run_server(config: ServerConfig) -> None:
    """Load CONFIG's model and serve until interrupted."""
    from speechkd.models import load_model

    required(config, "model")
    model, processor = load_model(config.model, device=config.device, dtype=config.dtype)
    asyncio.run(_serve_forever(StreamingServer(model, processor, config, model_name=config.model)))


async def _serve_forever(server: StreamingServer) -> None:
    port = await server.start()
    print(f"speechkd serve: open http://{server.config.host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Future()
    finally:
        await server.stop()
