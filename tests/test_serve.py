"""The browser demo's server: static page, WebSocket protocol, limits, several clients, vanishing clients.

All traffic stays on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import weakref

import numpy as np
import pytest

pytest.importorskip("websockets", reason="the browser demo needs `pip install websockets`")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from speechkd.streaming.serve import ServerConfig, StreamingServer  # noqa: E402


@pytest.fixture(scope="module")
def tiny_en(tiny_en_dir):
    from speechkd.models import load_model

    return load_model(str(tiny_en_dir))


@pytest.fixture(scope="module")
def speech(fotaq_dev_records) -> tuple[np.ndarray, str]:
    """Two dev lines (about 5 s of real speech) and their text."""
    from speechkd.audio import load_audio

    records = fotaq_dev_records[:2]
    return np.concatenate([load_audio(r["audio"]) for r in records]), " ".join(r["text"] for r in records)


@contextlib.contextmanager
def running_server(model_and_processor, **limits):
    """A StreamingServer on a free localhost port, its event loop in a background thread."""
    model, processor = model_and_processor
    server = StreamingServer(model, processor, ServerConfig(port=0, **limits), model_name="tiny.en")
    loop = asyncio.new_event_loop()
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server, port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def open_session(port: int, sample_rate: int = 16000):
    client = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, close_timeout=5)
    ready = json.loads(client.recv(timeout=10))
    assert ready["type"] == "ready"
    client.send(json.dumps({"type": "start", "sample_rate": sample_rate, "format": "f32"}))
    return client


def send_audio(client, audio: np.ndarray, seconds_per_message: float = 0.25) -> None:
    step = int(16000 * seconds_per_message)
    for start in range(0, len(audio), step):
        client.send(audio[start : start + step].astype("<f4").tobytes())


def transcribe(port: int, audio: np.ndarray) -> dict:
    """Stream `audio` faster than real time, stop, and return the final message."""
    with open_session(port) as client:
        send_audio(client, audio)
        client.send(json.dumps({"type": "stop"}))
        messages = [json.loads(m) for m in _messages(client, timeout=120)]
    assert messages[-1]["type"] == "final", messages[-1]
    return messages[-1]


def _messages(client, timeout: float):
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionClosed):
        while time.monotonic() < deadline:
            yield client.recv(timeout=max(0.1, deadline - time.monotonic()))


def close_code(client, timeout: float = 30) -> int | None:
    """Drain messages until the server closes; return the close code."""
    for _ in _messages(client, timeout):
        pass
    return client.close_code


def wait_until(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def get(port: int, path: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.headers["Content-Type"], response.read()


def test_serves_the_page_and_its_scripts(tiny_en):
    with running_server(tiny_en) as (_, port):
        content_type, page = get(port, "/")
        assert content_type.startswith("text/html") and b"live transcription" in page
        for script in ("/app.js", "/pcm-worklet.js"):
            assert get(port, script)[0].startswith("text/javascript")
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(port, "/secret.txt")
        missing.value.close()
        assert missing.value.code == 404


@pytest.mark.slow
def test_streams_speech_and_reports_latency(tiny_en, speech):
    from speechkd.text import normalize

    audio, _ = speech
    with running_server(tiny_en) as (server, port):
        final = transcribe(port, audio)
        assert wait_until(lambda: not server.sessions)
    words = set(normalize(final["text"]).split())
    assert {"kitchen", "hamburger", "fries"} <= words, final["text"]
    assert final["latency"]["mean"] is not None and final["rtf"] > 0


def test_rejects_oversize_messages_and_keeps_serving(tiny_en):
    with running_server(tiny_en, max_message_bytes=16000) as (server, port):
        client = open_session(port)
        client.send(np.zeros(8000, "<f4").tobytes())  # 32000 bytes
        assert close_code(client) == 1009  # "message too big"
        assert wait_until(lambda: not server.sessions)
        with open_session(port) as again:  # the server is still there
            again.send(np.zeros(4000, "<f4").tobytes())


def test_rejects_a_wrong_sample_rate(tiny_en):
    with running_server(tiny_en) as (_, port):
        client = open_session(port, sample_rate=44100)
        error = json.loads(client.recv(timeout=10))
        assert error["type"] == "error" and "16000" in error["message"]
        assert close_code(client) == 1003


def test_refuses_audio_before_start_and_bad_control_messages(tiny_en):
    with running_server(tiny_en) as (_, port):
        for message in (np.zeros(160, "<f4").tobytes(), "not json", json.dumps({"type": "dance"})):
            client = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10)
            client.recv(timeout=10)  # ready
            client.send(message)
            assert json.loads(client.recv(timeout=10))["type"] == "error"
            assert close_code(client) == 1008


def test_ends_a_session_past_its_length_limit(tiny_en):
    with running_server(tiny_en, max_session_seconds=1.0) as (server, port):
        client = open_session(port)
        with contextlib.suppress(ConnectionClosed):  # the server may close before the last frame is sent
            send_audio(client, np.zeros(32000, np.float32))
        assert close_code(client) == 1008
        assert wait_until(lambda: not server.sessions)


def test_refuses_clients_beyond_the_limit_and_cross_origin_pages(tiny_en):
    with running_server(tiny_en, max_clients=1) as (_, port):
        with open_session(port):
            extra = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10)
            assert close_code(extra) == 1013  # try again later
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{port}/ws", origin="http://evil.example", open_timeout=10)


@pytest.mark.slow
def test_survives_a_client_that_vanishes_mid_stream(tiny_en, speech):
    from speechkd.text import normalize

    audio, _ = speech
    with running_server(tiny_en) as (server, port):
        client = open_session(port)
        send_audio(client, audio[: 3 * 16000])  # an update is now running for this client
        assert wait_until(lambda: len(server.sessions) == 1, timeout=10)
        transcriber = weakref.ref(next(iter(server.sessions)).transcriber)
        client.socket.shutdown(socket.SHUT_RDWR)  # gone without a closing handshake
        client.socket.close()
        assert wait_until(lambda: not server.sessions)
        assert wait_until(lambda: gc.collect() >= 0 and transcriber() is None), "session state was kept"
        final = transcribe(port, audio)  # and the next client is served normally
    assert "kitchen" in normalize(final["text"])


@pytest.mark.slow
def test_serves_several_clients_at_once(tiny_en, fotaq_dev_records):
    from concurrent.futures import ThreadPoolExecutor

    from speechkd.audio import load_audio
    from speechkd.text import normalize

    lines = [fotaq_dev_records[0], fotaq_dev_records[1]]  # "...my kitchen?" / "...hamburger and fries..."
    with running_server(tiny_en) as (server, port):
        with ThreadPoolExecutor(2) as pool:
            finals = list(pool.map(lambda r: transcribe(port, load_audio(r["audio"])), lines))
        assert wait_until(lambda: not server.sessions)
    first, second = (set(normalize(f["text"]).split()) for f in finals)
    assert "kitchen" in first and "hamburger" not in first
    assert "hamburger" in second and "kitchen" not in second


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_refuses_non_finite_or_absurd_samples(tiny_en, bad):
    with running_server(tiny_en) as (_, port), open_session(port) as client:
        frame = np.zeros(4000, dtype="<f4")
        frame[100] = bad
        client.send(frame.tobytes())
        messages = [json.loads(m) for m in _messages(client, timeout=30)]
        assert messages and messages[-1]["type"] == "error", messages
        assert "samples" in messages[-1]["message"]
        assert not any(m["type"] == "update" and m["committed"] for m in messages)
        assert client.close_code == 1007


def test_idle_sessions_are_closed_and_free_their_slots(tiny_en, speech):
    idle_seconds = 2.0
    with running_server(tiny_en, max_clients=4, idle_seconds=idle_seconds) as (server, port):
        idle = [open_session(port) for _ in range(4)]  # `start`, then nothing
        assert wait_until(lambda: len(server.sessions) == 4, timeout=10)
        began, final = time.monotonic(), None
        while final is None and time.monotonic() - began < idle_seconds + 1:
            try:
                final = transcribe(port, speech[0][: 16000 * 2])  # a real client, retrying while refused
            except (ConnectionClosed, InvalidStatus, AssertionError, TimeoutError):
                time.sleep(0.1)
        served_after = time.monotonic() - began
        assert final is not None and final["type"] == "final", f"not served within {idle_seconds + 1} s"
        assert served_after < idle_seconds + 1 + 30  # the 30 s bounds transcription, not waiting
        for client in idle:
            assert close_code(client, timeout=5) == 1008
            client.close()
