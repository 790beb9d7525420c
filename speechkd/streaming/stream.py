"""The terminal stream stage: a model, a source (file as if live, or a microphone), statistics at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from speechkd.config import ConfigError, check_types, one_of, positive, required
from speechkd.options import DEFAULT_DTYPE, DTYPE_NAMES
from speechkd.streaming.config import StreamingConfig

if TYPE_CHECKING:
    from speechkd.streaming.transcriber import Update


@dataclass(frozen=True)
class StreamConfig:
    """What `speechkd stream` runs: which model, on which audio, and how the stream is cut (`streaming`)."""

    SECTION = "stream"

    model: str = ""
    audio: str | None = None  # a file played as if live
    mic: bool = False  # the microphone instead of a file
    mic_seconds: float | None = None  # stop the microphone after this many seconds
    as_fast_as_possible: bool = False  # no real-time waiting; latency on a simulated clock
    reference: str | None = None  # reference transcript (text file) for WER
    offline: bool = True  # without a reference, score against the model's own offline transcript
    device: str | None = None
    dtype: str = DEFAULT_DTYPE
    streaming: StreamingConfig = field(default_factory=StreamingConfig)

    def __post_init__(self):
        check_types(self)
        required(self, "model")
        if (self.audio is None) != self.mic:
            raise ConfigError(
                "stream: give an audio file (--audio FILE) or the microphone (--mic), one of them"
            )
        positive(self, "mic_seconds")
        one_of(self, "dtype", DTYPE_NAMES)


@dataclass
class StreamOutcome:
    """The statistics of a finished stream and what its WER was measured against."""

    stats: dict
    reference_kind: str  # "reference", "offline transcript" or "" (no WER)


def stream(config: StreamConfig, on_update: Callable[[Update, float], None] | None = None) -> StreamOutcome:
    """Stream CONFIG's audio through its model, calling ON_UPDATE(update, emitted_at) as text arrives."""
    from speechkd.audio import load_audio
    from speechkd.models import load_model
    from speechkd.streaming.sources import MicrophoneSource, RealtimeSource, SimulatedSource
    from speechkd.streaming.transcriber import (
        StreamingTranscriber,
        offline_transcript,
        run_stream,
        stream_statistics,
    )

    reference = _read_reference(config.reference)
    audio = load_audio(config.audio) if config.audio is not None else None
    chunk, language = config.streaming.chunk_seconds, config.streaming.decoding.language
    if audio is None:
        try:
            source = MicrophoneSource(chunk, config.mic_seconds)
        except RuntimeError as error:  # no sounddevice, or no input device
            raise ConfigError(f"stream: {error}") from error
    model, processor = load_model(config.model, device=config.device, dtype=config.dtype)
    if audio is not None:
        source = (SimulatedSource if config.as_fast_as_possible else RealtimeSource)(audio, chunk)
    result = run_stream(StreamingTranscriber(model, processor, config.streaming), source, on_update)
    kind = "reference" if reference is not None else ""
    if reference is None and audio is not None and config.offline:
        reference, kind = (
            offline_transcript(model, processor, audio, language),
            "offline transcript",
        )
    return StreamOutcome(stream_statistics(result, reference, language), kind)


def _read_reference(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise ConfigError(f"stream: cannot read --reference {path}: {error.strerror or error}") from error
