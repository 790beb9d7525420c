"""Options every stage shares, importable without torch: how to decode, in which dtype, with which window."""

from __future__ import annotations

from dataclasses import dataclass

from speechkd.config import check_types, one_of, positive

DTYPE_NAMES = ("float32", "bfloat16", "float16")
DEFAULT_DTYPE = "float32"
TASKS = ("transcribe", "translate")
WINDOW_SECONDS = 30.0  # Whisper's input window
ENCODER_WINDOWS = ("padded", "audio")  # padded: Whisper's 30 s; audio: the audio's length plus a margin


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode: batch size, beams, language/task, timestamps and the token budget."""

    SECTION = "decoding"

    batch_size: int = 16
    num_beams: int = 1
    language: str | None = None
    task: str | None = None
    return_timestamps: bool = False
    max_new_tokens: int | None = None  # None: by audio duration (caps runaway repetition)
    long_form: bool = True  # False: reject audio over 30 s instead of sequential long-form decoding
    token_timestamps: bool = False  # short-form: per-token times from cross-attention DTW (alignment_heads)
    keep_encoder_states: bool = False  # short-form: return each clip's encoder output (float16, CPU)

    def __post_init__(self) -> None:
        check_types(self)
        positive(self, "batch_size", "num_beams", "max_new_tokens")
        one_of(self, "task", (None, *TASKS))
