"""The browser demo in a real headless Chromium whose fake microphone plays FOTAQ dev lines.

Needs the Debian `chromium` package (`apt-get install -y chromium`) and `websockets`; skipped without them.
Chromium is driven over the DevTools protocol (no extra driver). With SPEECHKD_SCREENSHOT=PATH set, the
test also saves a screenshot of the page mid-stream (how docs/screenshot-stream.png was made).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("websockets", reason="the browser demo needs `pip install websockets`")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium: `apt-get install -y chromium` to run this test"
    ),
]


@pytest.fixture(scope="module")
def server_url(tiny_en_dir):
    """The demo server on a free localhost port, in a background thread."""
    from speechkd.models import load_model
    from speechkd.streaming.serve import ServerConfig, StreamingServer

    model, processor = load_model(str(tiny_en_dir))
    server = StreamingServer(model, processor, ServerConfig(port=0), model_name="bundled:tiny.en")
    loop = asyncio.new_event_loop()
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


@pytest.fixture
def fake_microphone(tmp_path, fotaq_dev_records) -> tuple[Path, str, float]:
    """A 16 kHz WAV of four dev lines (about 12 s) with a second of silence at the end; its text; its length."""
    from speechkd.audio import SAMPLE_RATE, load_audio

    records = fotaq_dev_records[:4]
    audio = np.concatenate([load_audio(r["audio"]) for r in records] + [np.zeros(SAMPLE_RATE, np.float32)])
    path = tmp_path / "microphone.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path, " ".join(r["text"] for r in records), len(audio) / SAMPLE_RATE


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript, take a screenshot."""

    def __init__(self, websocket_url: str):
        from websockets.sync.client import connect

        self.socket = connect(websocket_url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True, userGesture=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"page never satisfied {expression!r} within {timeout:.0f} s")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


def launch_chromium(url: str, microphone: Path, profile: Path) -> tuple[subprocess.Popen, DevTools]:
    """Headless Chromium with the WAV as its microphone, the permission prompt auto-accepted."""
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # running as root in CI containers
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1000,620",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop",
            "--autoplay-policy=no-user-gesture-required",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"Chromium did not start (exit {process.poll()})")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            pages = [t for t in json.load(response) if t["type"] == "page" and t["url"].startswith(url)]
        if pages or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return process, DevTools(pages[0]["webSocketDebuggerUrl"])


def test_page_transcribes_the_fake_microphone(server_url, fake_microphone, tmp_path):
    from speechkd.text import normalize

    microphone, reference, seconds = fake_microphone
    process, page = launch_chromium(server_url, microphone, tmp_path / "profile")
    try:
        page.wait_for("window.speechkd && window.speechkd.state.ready", timeout=30)
        page.evaluate("window.speechkd.start()")
        page.wait_for("window.speechkd.state.running && !window.speechkd.state.error", timeout=10)
        screenshot = os.environ.get("SPEECHKD_SCREENSHOT")
        if screenshot:  # mid-stream: some text committed, a partial hypothesis still open
            page.wait_for("speechkd.state.committed.length >= 10 && speechkd.state.partial.length > 0", 90)
            page.screenshot(Path(screenshot))
        page.wait_for(f"speechkd.state.sentSeconds >= {seconds}", timeout=seconds + 60)  # the WAV has played
        page.evaluate("window.speechkd.stop()")
        final = page.wait_for("speechkd.state.final", timeout=120)
        shown = page.evaluate("document.getElementById('committed').textContent")
        latency = page.evaluate("document.getElementById('lat-mean').textContent")
    finally:
        process.kill()
        process.wait(timeout=10)
    words = normalize(shown).split()
    assert {"kitchen", "hamburger", "fries"} <= set(words), shown
    assert set(normalize(reference).split()) & set(words) >= {"what", "doing", "lunch"}
    assert final["audio_seconds"] >= seconds - 1
    assert latency.endswith(" s"), latency
