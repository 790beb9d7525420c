"""Pseudo-label filters on hand-made rows: each rejection is named, thresholds and modes behave."""

from __future__ import annotations

import dataclasses

import pytest

from speechkd.filters import (
    FilterConfig,
    chars_per_second,
    is_upper_case,
    label_free_reason,
    reference_wer,
    reject_reason,
)

DEFAULTS = FilterConfig()


def row(text: str | None = None, **signals) -> dict:
    """A decoded row as the stage writes it: confident, plausible values unless overridden."""
    base = {
        "teacher_text": "I'm going to run you out of town.",
        "avg_logprob": -0.2,
        "no_speech_prob": 0.01,
        "compression_ratio": 0.9,
        "duration": 2.4,
    }
    if text is not None:
        base["text"] = text
        base["wer"] = reference_wer(text, signals.get("teacher_text", base["teacher_text"]))
    return base | signals


def test_wer_is_normalised_before_scoring():
    assert reference_wer("I'm going to run you out of town.", "I'm gonna run you out of TOWN!") == 0.0
    assert reference_wer("Hello world", "hello there world") == pytest.approx(0.5)
    assert reference_wer("(sighs)", "anything") is None  # nothing left of the reference


def test_the_wer_filter_keeps_only_rows_under_the_threshold():
    good = row("I'm going to run you out of town.")
    one_in_ten = row("a b c d e f g h i j", teacher_text="a b c d e f g h i x")  # exactly 10 %
    one_in_eleven = row("a b c d e f g h i j k", teacher_text="a b c d e f g h i j x")  # 9.1 %
    assert reject_reason(good, DEFAULTS) is None
    assert reject_reason(one_in_ten, DEFAULTS) == "wer>=10"
    assert reject_reason(one_in_eleven, DEFAULTS) is None
    assert reject_reason(one_in_eleven, FilterConfig(wer_threshold=5)) == "wer>=5"


def test_reference_rules_name_their_reason():
    assert reject_reason(row("[laughs]"), DEFAULTS) == "empty_reference"
    shouting = row("Get out of here!", teacher_text="GET OUT OF HERE!")
    assert reject_reason(shouting, DEFAULTS) == "upper_case"
    assert is_upper_case("OK I SEE") and not is_upper_case("I see") and not is_upper_case("I")


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        ({"teacher_text": "  "}, "empty_output"),
        ({"compression_ratio": 3.1}, "compression_ratio"),
        ({"avg_logprob": -1.4}, "low_logprob"),
        ({"teacher_text": "do it do it do it do it do it"}, "repeated_ngrams"),
        ({"teacher_text": "a" * 200, "duration": 1.0}, "chars_per_second"),
    ],
)
def test_each_label_free_check_names_its_rejection(signals, reason):
    assert label_free_reason(row(**signals), DEFAULTS) == reason


def test_a_check_set_to_none_is_off():
    config = FilterConfig(min_avg_logprob=None, max_no_speech_prob=0.5)
    assert label_free_reason(row(avg_logprob=-3.0), config) is None
    assert label_free_reason(row(no_speech_prob=0.9), config) == "no_speech"


def test_label_free_checks_apply_where_there_is_no_reference_unless_told():
    confident_but_wrong = row("You couldn't pilot your way out of a paper bag.", avg_logprob=-2.0)
    confident_but_wrong["wer"] = 0.0
    unlabelled = row(avg_logprob=-2.0)
    assert reject_reason(unlabelled, DEFAULTS) == "low_logprob"
    assert reject_reason(confident_but_wrong, DEFAULTS) is None  # auto: the reference decides
    assert reject_reason(confident_but_wrong, FilterConfig(label_free="always")) == "low_logprob"
    assert reject_reason(unlabelled, FilterConfig(label_free="never")) is None


def test_missing_signals_pass_and_chars_per_second_needs_a_duration():
    long_form = row(avg_logprob=None, no_speech_prob=None)  # long-form decoding reports neither
    assert label_free_reason(long_form, DEFAULTS) is None
    assert chars_per_second("ab cd", 2.0) == 2.0 and chars_per_second("ab", None) is None


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="label_free"):
        FilterConfig(label_free="sometimes")
    with pytest.raises(ValueError, match="ngram_size"):
        dataclasses.replace(DEFAULTS, ngram_size=0)
