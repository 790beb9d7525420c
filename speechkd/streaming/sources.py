"""Where streamed audio comes from: a file on a simulated clock, a file in real time, or a microphone.

Each source has `read(now) -> (samples, start) | None`: the audio that has arrived (at least one chunk) and
the stream time at which the update can start (its last sample has arrived and the model is free); `now` is
the time the previous update finished.
"""

from __future__ import annotations

import queue
import time

import numpy as np

from speechkd.audio import SAMPLE_RATE


class SimulatedSource:
    """A file fed as if live, on a simulated clock: audio up to `now` is available, compute advances `now`.

    With `compute_aware=False` every update gets exactly one chunk (a reproducible schedule).
    """

    def __init__(self, audio: np.ndarray, chunk_seconds: float, compute_aware: bool = True):
        self.audio, self.chunk = audio, int(round(chunk_seconds * SAMPLE_RATE))
        self.position, self.compute_aware = 0, compute_aware

    def read(self, now: float) -> tuple[np.ndarray, float] | None:
        """Everything that has arrived by `now`, waiting (on the simulated clock) for at least one chunk."""
        if self.position >= len(self.audio):
            return None
        arrived = int(now * SAMPLE_RATE) if self.compute_aware else 0
        end = min(len(self.audio), max(arrived, self.position + self.chunk))
        samples, self.position = self.audio[self.position : end], end
        return samples, max(end / SAMPLE_RATE, now if self.compute_aware else 0.0)


class RealtimeSource(SimulatedSource):
    """A file played at real speed: waits on the wall clock for each chunk to have 'arrived'."""

    def read(self, now: float) -> tuple[np.ndarray, float] | None:
        if self.position == 0:
            self.started = time.perf_counter()  # the clock starts with the first read
        if self.position >= len(self.audio):
            return None
        due = (self.position + self.chunk) / SAMPLE_RATE
        time.sleep(max(0.0, min(due, len(self.audio) / SAMPLE_RATE) - (time.perf_counter() - self.started)))
        return super().read(time.perf_counter() - self.started)


class MicrophoneSource:
    """Live 16 kHz capture with `sounddevice`; stops after `max_seconds` or on Ctrl-C."""

    def __init__(self, chunk_seconds: float, max_seconds: float | None = None):
        try:
            import sounddevice
        except (ImportError, OSError) as error:  # OSError: the package is there but PortAudio is not
            raise RuntimeError(f"--mic needs `pip install sounddevice` and PortAudio ({error})") from error

        self.queue: queue.Queue = queue.Queue()
        self.chunk, self.max_seconds, self.received = chunk_seconds, max_seconds, 0
        self.stream = sounddevice.InputStream(
            samplerate=SAMPLE_RATE, channels=1, dtype="float32", callback=self._on_audio
        )

    def _on_audio(self, data, frames, time_info, status) -> None:
        self.queue.put(data[:, 0].copy())

    def read(self, now: float) -> tuple[np.ndarray, float] | None:
        parts: list[np.ndarray] = []
        if not self.stream.active and self.received == 0:
            self.stream.start()
        try:
            while sum(map(len, parts)) < self.chunk * SAMPLE_RATE or not self.queue.empty():
                if self.max_seconds is not None and self.received >= self.max_seconds * SAMPLE_RATE:
                    raise KeyboardInterrupt
                parts.append(self.queue.get())
                self.received += len(parts[-1])
        except KeyboardInterrupt:  # Ctrl-C ends the recording, and the statistics are still printed
            self.stream.stop()
            return None
        return np.concatenate(parts), self.received / SAMPLE_RATE
