"""Pseudo-label quality filters: the WER filter (with references) and label-free signals (without)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from speechkd.config import at_least, check_types, in_range, one_of, positive
from speechkd.text import normalize, repeated_ngrams, utterance_wer

LABEL_FREE_MODES = ("auto", "always", "never")
OFF = (
    "off",
    "none",
    "",
)  # a threshold given as one of these (or YAML's `off`, read as false) is switched off


@dataclass(frozen=True)
class FilterConfig:
    """Filter thresholds; None switches a label-free check off. Defaults come from the FOTAQ filter study."""

    SECTION = "filters"
    SWITCHABLE = (
        "max_compression_ratio", "min_avg_logprob", "max_no_speech_prob", "max_repeated_ngrams",
        "min_chars_per_second", "max_chars_per_second",
    )  # fmt: skip

    wer_threshold: float = 10.0  # percent, on normalised text (Distil-Whisper)
    max_compression_ratio: float | None = 2.4  # Whisper's own; 1.6-2.4 all caught the same runaways
    min_avg_logprob: float | None = -0.8  # the loosest value that rejected no good pseudo-label
    max_no_speech_prob: float | None = None
    ngram_size: int = 3
    max_repeated_ngrams: int | None = 2
    min_chars_per_second: float | None = None
    max_chars_per_second: float | None = 25.0
    # auto: label-free checks only where there is no reference; always: everywhere; never: nowhere
    label_free: str = "auto"

    def __post_init__(self) -> None:
        for name in self.SWITCHABLE:
            value = getattr(self, name)
            if value is False or (isinstance(value, str) and value.lower() in OFF):
                object.__setattr__(self, name, None)
        check_types(self)
        at_least(self, 0, "wer_threshold", "max_compression_ratio", "max_repeated_ngrams")
        at_least(self, 0, "min_chars_per_second", "max_chars_per_second")
        in_range(self, -math.inf, 0, "min_avg_logprob")
        in_range(self, 0, 1, "max_no_speech_prob")
        positive(self, "ngram_size")
        one_of(self, "label_free", LABEL_FREE_MODES)


def reference_wer(reference: str, hypothesis: str, language: str | None = "en") -> float | None:
    """Normalised WER of one pseudo-label (a fraction); None when the normalised reference is empty."""
    normalised = normalize(reference, language)
    if not normalised:
        return None
    return utterance_wer(normalised, normalize(hypothesis, language))


def chars_per_second(text: str, duration: float | None) -> float | None:
    """Non-space characters of the pseudo-label per second of audio; None without a duration."""
    if not duration:
        return None
    return len("".join(text.split())) / duration


def is_upper_case(text: str) -> bool:
    """True for a pseudo-label written all in capitals (Distil-Whisper drops those as unreliable)."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) > 1 and all(c.isupper() for c in letters)


# ------------------------------------------------------------------ the individual checks
# Each check reads one row (teacher_text, avg_logprob, ... as written to pseudo_labels.jsonl) and returns
# the reject reason, or None when the row passes. The filter study evaluates them one by one.


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


def _under(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value < limit


def check_empty_output(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    return "empty_output" if not row.get("teacher_text", "").strip() else None


def check_compression_ratio(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    return "compression_ratio" if _over(row.get("compression_ratio"), config.max_compression_ratio) else None


def check_avg_logprob(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    return "low_logprob" if _under(row.get("avg_logprob"), config.min_avg_logprob) else None


def check_no_speech(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    return "no_speech" if _over(row.get("no_speech_prob"), config.max_no_speech_prob) else None


def check_repeated_ngrams(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    if config.max_repeated_ngrams is None:
        return None
    repeats = repeated_ngrams(row.get("teacher_text", "").lower().split(), config.ngram_size)
    return "repeated_ngrams" if repeats > config.max_repeated_ngrams else None


def check_chars_per_second(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    rate = chars_per_second(row.get("teacher_text", ""), row.get("duration"))
    too_fast = _over(rate, config.max_chars_per_second)
    return "chars_per_second" if too_fast or _under(rate, config.min_chars_per_second) else None


LABEL_FREE_CHECKS: dict[str, Callable[[Mapping[str, Any], FilterConfig], str | None]] = {
    "empty_output": check_empty_output,
    "compression_ratio": check_compression_ratio,
    "low_logprob": check_avg_logprob,
    "no_speech": check_no_speech,
    "repeated_ngrams": check_repeated_ngrams,
    "chars_per_second": check_chars_per_second,
}


def label_free_reason(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    """The first label-free check the row fails, or None."""
    for check in LABEL_FREE_CHECKS.values():
        reason = check(row, config)
        if reason is not None:
            return reason
    return None


def reference_reason(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    """The first reference-based check the row fails (empty reference, upper case, WER), or None."""
    if row.get("wer") is None:
        return "empty_reference"
    if is_upper_case(row.get("teacher_text", "")):
        return "upper_case"
    if row["wer"] * 100 >= config.wer_threshold:
        return f"wer>={config.wer_threshold:g}"
    return None


def reject_reason(row: Mapping[str, Any], config: FilterConfig) -> str | None:
    """Why a decoded row is rejected (decoding errors first), or None to keep it."""
    if row.get("error"):
        return row["error"]
    has_reference = row.get("text") is not None
    if has_reference:
        reason = reference_reason(row, config)
        if reason is not None:
            return reason
    if config.label_free == "always" or (config.label_free == "auto" and not has_reference):
        return label_free_reason(row, config)
    return None


def label_row(
    record: Mapping[str, Any], signals: Mapping[str, Any], config: FilterConfig, language: str | None
) -> dict:
    """The input record plus the teacher's pseudo-label, its quality signals, its WER and the verdict."""
    signals = dict(signals)
    error, decoded_duration = signals.pop("error"), signals.pop("decoded_duration")
    row = dict(record) | signals
    if "duration" not in row and decoded_duration:
        row["duration"] = decoded_duration
    if row.get("text") is not None and not error:
        wer = reference_wer(row["text"], row["teacher_text"], language)
        row["wer"] = None if wer is None else round(wer, 4)
    reason = error or reject_reason(row, config)
    return row | {"kept": reason is None, "reject_reason": reason}
