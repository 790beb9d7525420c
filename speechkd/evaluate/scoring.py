"""Accuracy of transcripts: WER/CER per utterance, manifest, speaker and long-form subset; paired bootstrap."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from speechkd.text import char_error_rate, normalize, repeated_ngrams, word_errors

HALLUCINATION_NGRAM = 5  # Distil-Whisper's "5-Dup." count
LOOP_NGRAM = 3  # short lines loop on short phrases ("Who are you? Who are you? ...")
LOOP_LENGTH_RATIO = 3.0  # a hypothesis over 3x its reference's words counts as a loop


def score_utterance(reference: str | None, hypothesis: str, language: str | None) -> dict:
    """Normalised forms and word edit counts of one utterance (counts are None without a reference)."""
    hypothesis_norm = normalize(hypothesis, language)
    row = {
        "hypothesis_norm": hypothesis_norm,
        "repeated_5grams": repeated_ngrams(hypothesis_norm, HALLUCINATION_NGRAM),
        "repeated_3grams": repeated_ngrams(hypothesis_norm, LOOP_NGRAM),
    }
    if reference is None:
        return row
    reference_norm = normalize(reference, language)
    errors = word_errors([reference_norm], [hypothesis_norm])
    return row | {
        "reference_norm": reference_norm,
        "wer": errors.wer,
        "substitutions": errors.substitutions,
        "deletions": errors.deletions,
        "insertions": errors.insertions,
        "ref_words": errors.ref_words,
        "loop": len(hypothesis_norm.split()) > LOOP_LENGTH_RATIO * max(errors.ref_words, 1),
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Pooled accuracy of scored ROWS (those decoded and with a reference), plus failure and length counts."""
    decoded = [r for r in rows if r.get("error") is None]
    scored = [r for r in decoded if r.get("reference") is not None]
    summary = {
        "n_utterances": len(rows),
        "n_decoded": len(decoded),
        "n_failed": len(rows) - len(decoded),
        "audio_seconds": round(sum(r.get("duration") or 0.0 for r in decoded), 3),
        "repeated_5grams": sum(r["repeated_5grams"] for r in decoded),
        "repeated_3grams": sum(r.get("repeated_3grams", 0) for r in decoded),
    }
    if not scored:
        return summary
    normalised = word_errors([r["reference_norm"] for r in scored], [r["hypothesis_norm"] for r in scored])
    orthographic = word_errors(
        [_words(r["reference"]) for r in scored], [_words(r["hypothesis"]) for r in scored]
    )
    return summary | {
        "wer": normalised.wer,
        "wer_ortho": orthographic.wer,
        "cer": char_error_rate([r["reference_norm"] for r in scored], [r["hypothesis_norm"] for r in scored]),
        "sub_rate": normalised.sub_rate,
        "del_rate": normalised.del_rate,
        "ins_rate": normalised.ins_rate,
        "ref_words": normalised.ref_words,
        "ref_repeated_5grams": sum(repeated_ngrams(r["reference_norm"], HALLUCINATION_NGRAM) for r in scored),
        "ref_repeated_3grams": sum(repeated_ngrams(r["reference_norm"], LOOP_NGRAM) for r in scored),
        "loops": sum(bool(r.get("loop")) for r in scored),
    }


def _words(text: str) -> str:
    return " ".join(text.split())


def grouped(rows: Sequence[dict], key: Callable[[dict], str | None]) -> dict[str, dict]:
    """summarize() per group of ROWS, groups named by KEY (rows where KEY is None are left out)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        name = key(row)
        if name is not None:
            groups[str(name)].append(row)
    return {name: summarize(group) for name, group in sorted(groups.items())}


MACRO_KEYS = ("wer", "wer_ortho", "cer", "sub_rate", "del_rate", "ins_rate")


def macro_average(per_manifest: dict[str, dict]) -> dict:
    """The unweighted mean over manifests of each rate (each manifest counts once, as on the leaderboard)."""
    return {
        key: float(np.mean(values))
        for key in MACRO_KEYS
        if (values := [m[key] for m in per_manifest.values() if key in m])
    }


def accuracy_report(rows: Sequence[dict]) -> dict:
    """Pooled, per-manifest, macro-averaged, per-speaker and long-form accuracy of one system's rows."""
    per_manifest = grouped(rows, lambda r: r["manifest"])
    report = summarize(rows) | {"manifests": per_manifest, "macro": macro_average(per_manifest)}
    speakers = grouped(rows, lambda r: r.get("speaker"))
    if speakers:
        report["speakers"] = speakers
    long_rows = [r for r in rows if r.get("long_form")]
    if long_rows:
        report["long_form"] = summarize(long_rows)
    return report


def utterance_edits(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (word edits, reference words) arrays, for resampling."""
    edits = np.array([r["substitutions"] + r["deletions"] + r["insertions"] for r in rows], dtype=float)
    words = np.array([r["ref_words"] for r in rows], dtype=float)
    return edits, words


def paired_bootstrap(
    rows_a: Sequence[dict], rows_b: Sequence[dict], samples: int = 1000, seed: int = 0
) -> dict | None:
    """WER(A) - WER(B) on the same utterances, with a 95% CI from resampling utterances (pairs kept)."""
    pairs = [
        (a, b)
        for a, b in zip(rows_a, rows_b)
        if a.get("wer") is not None and b.get("wer") is not None and a["id"] == b["id"]
    ]
    if not pairs:
        return None
    edits_a, words = utterance_edits([a for a, _ in pairs])
    edits_b, _ = utterance_edits([b for _, b in pairs])
    total = max(words.sum(), 1.0)
    difference = (edits_a.sum() - edits_b.sum()) / total
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(pairs), size=(samples, len(pairs)))
    resampled = (edits_a[draws].sum(axis=1) - edits_b[draws].sum(axis=1)) / np.maximum(
        words[draws].sum(axis=1), 1.0
    )
    low, high = np.percentile(resampled, [2.5, 97.5])
    return {
        "wer_difference": float(difference),
        "ci95": [float(low), float(high)],
        "n_utterances": len(pairs),
        "bootstrap_samples": samples,
    }
