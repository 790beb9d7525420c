"""Scoring and timing helpers behind `speechkd evaluate`, on real FOTAQ transcripts (no model needed)."""

from __future__ import annotations

import pytest

from speechkd.evaluate.scoring import accuracy_report, paired_bootstrap, score_utterance, summarize
from speechkd.evaluate.speculative import DraftOptions, DraftStats, round_speedup
from speechkd.evaluate.speed import percentiles, rotated, rtfx


def row(reference, hypothesis, manifest="dev", speaker="JOE", duration=2.0, error=None, **extra):
    scored = {} if error else score_utterance(reference, hypothesis, "en")
    fields = {"id": f"{manifest}-{reference}", "manifest": manifest, "speaker": speaker, "duration": duration}
    return fields | {"reference": reference, "hypothesis": hypothesis, "error": error} | scored | extra


def test_an_utterance_is_scored_on_normalised_text():
    scored = score_utterance("I DON'T take orders!", "I do not take orders.", "en")
    assert scored["reference_norm"] == scored["hypothesis_norm"] == "i do not take orders"
    assert scored["wer"] == 0.0 and scored["ref_words"] == 5


def test_summary_pools_errors_and_counts_failures_apart():
    rows = [
        row("What are you doing in my kitchen?", "What are you doing in my kitchen"),
        row("Could I have a hamburger and fries please.", "Could I have the hamburger and fries?"),
        row("I'm here for kitchen duty.", "", error="audio_error: cannot load audio"),
    ]
    summary = summarize(rows)
    assert summary["n_utterances"] == 3 and summary["n_failed"] == 1 and summary["n_decoded"] == 2
    assert summary["ref_words"] == 15
    assert summary["wer"] == pytest.approx(2 / 15)  # one substitution, one deletion
    assert summary["sub_rate"] == pytest.approx(1 / 15) and summary["del_rate"] == pytest.approx(1 / 15)
    assert summary["wer_ortho"] > summary["wer"]  # punctuation and case count orthographically
    assert summary["audio_seconds"] == 4.0


def test_macro_average_weighs_each_manifest_once():
    rows = [row("we go to the castle", "we go to the castle", manifest="a")] * 3
    rows += [row("lunch has been served", "lunch has served", manifest="b")]
    report = accuracy_report(rows)
    assert report["manifests"]["a"]["wer"] == 0.0 and report["manifests"]["b"]["wer"] == 0.25
    assert report["macro"]["wer"] == pytest.approx(0.125)
    assert report["wer"] == pytest.approx(1 / 19)  # pooled over words


def test_long_form_rows_get_hallucination_signals():
    looping = "we go to the castle " * 4
    rows = [row("we go to the castle", looping.strip(), long_form=True, duration=45.0)]
    long_form = accuracy_report(rows)["long_form"]
    assert long_form["repeated_5grams"] == 11 and long_form["ref_repeated_5grams"] == 0
    assert long_form["ins_rate"] == pytest.approx(3.0)


def test_short_form_loops_are_counted():
    rows = [
        row("Who are you?", "Who are you? " * 8),  # 24 words for 3: a loop
        row("No.", "No, no."),  # twice the reference: not a loop
        row("Lunch has been served.", "Lunch has been served."),
    ]
    summary = summarize(rows)
    assert summary["loops"] == 1
    assert summary["repeated_3grams"] == 19 and summary["ref_repeated_3grams"] == 0


def test_speed_is_reported_per_duration_bucket():
    from speechkd.evaluate.results import rtfx_by_duration

    utterances = [{"duration": d} for d in (2.0, 3.0, 10.0, 20.0)]
    measured = {0: {"seconds": 1.0}, 1: {"seconds": 1.5}, 2: {"seconds": 2.0}, 3: {"seconds": 10.0}}
    by_duration = rtfx_by_duration(measured, utterances, [0, 1, 2, 3])
    assert by_duration == {"< 5 s": 2.0, "5-15 s": 5.0, "15-30 s": 2.0}


def test_paired_bootstrap_interval_holds_the_difference():
    teacher = [
        row(f"what are you doing in kitchen {i}", f"what are you doing in kitchen {i}") for i in range(20)
    ]
    student = [
        row(r["reference"], r["hypothesis"].replace("doing", "going")) for r in teacher[:10]
    ] + teacher[10:]
    result = paired_bootstrap(student, teacher, samples=500, seed=1)
    assert result["wer_difference"] == pytest.approx(10 / 140)
    low, high = result["ci95"]
    assert 0 < low <= result["wer_difference"] <= high
    assert paired_bootstrap(teacher, teacher)["ci95"] == [0.0, 0.0]


def test_speed_helpers():
    assert rtfx(120.0, 30.0) == 4.0 and rtfx(1.0, 0.0) is None
    assert percentiles([1.0, 2.0, 3.0, 4.0])["p50"] == 2.5 and percentiles([])["p90"] is None
    assert rotated(["model", "baseline", "speculative"], 4) == ["baseline", "speculative", "model"]


def test_draft_statistics_and_the_round_speedup():
    stats = DraftStats()
    stats.add(5, 5)
    stats.add(5, 1)
    assert stats.acceptance == 0.6 and stats.rounds == 2
    # 3 of 5 drafted tokens accepted: 4 tokens for 5 draft steps of 10 ms and a 60 ms verification,
    # where the teacher alone takes 4 steps of 50 ms
    assert round_speedup(5, 3, step_ms=50, draft_ms=10, verify_ms=60) == pytest.approx(200 / 110)
    with pytest.raises(ValueError, match="schedule"):
        DraftOptions(schedule="fast")
