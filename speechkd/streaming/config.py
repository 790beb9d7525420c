"""How a stream is cut and decoded (LocalAgreement-2), importable without torch so it validates first."""

from __future__ import annotations

from dataclasses import dataclass, field

from speechkd.config import at_least, check_types, invalid, positive
from speechkd.options import WINDOW_SECONDS, DecodingOptions

# Decoding options the streaming policy fixes: one buffer at a time, timestamp mode (it transcribes the whole
# buffer more reliably), never long-form, token times for the words' times.
STREAMING_DECODING = {
    "batch_size": 1,
    "return_timestamps": True,
    "long_form": False,
    "token_timestamps": True,
}


@dataclass(frozen=True)
class StreamingConfig:
    """LocalAgreement-2 settings: update size, buffer trimming, prompt length and decoding."""

    SECTION = "streaming"

    chunk_seconds: float = 1.0  # minimum new audio per update
    trim_seconds: float = 15.0  # cut the buffer after a completed sentence once it is longer than this
    max_buffer_seconds: float = 25.0  # hard cap below Whisper's 30 s window, when no sentence completes
    prompt_chars: int = 200  # committed text (already out of the buffer) passed as the prompt
    decoding: DecodingOptions = field(default_factory=lambda: DecodingOptions(**STREAMING_DECODING))

    def __post_init__(self):
        check_types(self)
        positive(self, "chunk_seconds", "trim_seconds", "max_buffer_seconds")
        at_least(self, 0, "prompt_chars")
        if self.trim_seconds > self.max_buffer_seconds:
            raise invalid(
                self, "trim_seconds", f"must not exceed max_buffer_seconds ({self.max_buffer_seconds:g})"
            )
        if self.max_buffer_seconds >= WINDOW_SECONDS:
            raise invalid(
                self, "max_buffer_seconds", f"must stay under Whisper's {WINDOW_SECONDS:g} s window"
            )
        for name, value in STREAMING_DECODING.items():
            if getattr(self.decoding, name) != value:
                raise invalid(
                    self, name, f"is fixed at {value} when streaming, not {getattr(self.decoding, name)!r}"
                )
