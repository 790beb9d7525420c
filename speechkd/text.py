"""Whisper's text normalisers and the one implementation of WER, CER and hallucination signals."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jiwer

_ENGLISH_NAMES = {None, "en", "english"}


@cache
def english_normalizer() -> Callable[[str], str]:
    """Whisper's English normaliser with its British -> American spelling map."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer  # slow: on first use

    spelling_file = resources.files("whisper_normalizer") / "normalizers" / "english.json"
    return EnglishTextNormalizer(json.loads(spelling_file.read_text(encoding="utf-8")))


@cache
def basic_normalizer() -> Callable[[str], str]:
    """Whisper's language-independent normaliser (lower case, no punctuation or bracketed text)."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize(text: str, language: str | None = "en") -> str:
    """Normalise `text` the way Whisper's evaluations do: English rules for English, basic ones otherwise."""
    is_english = language is None or language.lower() in _ENGLISH_NAMES
    normalizer = english_normalizer() if is_english else basic_normalizer()
    # Whisper's English normaliser leaves a lone "." from a trailing "..."; a word with no letter or digit is
    # never speech, so it must not count as a word.
    return " ".join(word for word in normalizer(text).split() if any(c.isalnum() for c in word))


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of hypotheses against references, pooled over a corpus."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_words: int

    def _rate(self, count: int) -> float:
        # With no reference words, any inserted word is a 100% error rather than a division by zero.
        return count / self.ref_words if self.ref_words else float(count > 0)

    @property
    def wer(self) -> float:
        return self._rate(self.substitutions + self.deletions + self.insertions)

    @property
    def sub_rate(self) -> float:
        return self._rate(self.substitutions)

    @property
    def del_rate(self) -> float:
        return self._rate(self.deletions)

    @property
    def ins_rate(self) -> float:
        return self._rate(self.insertions)


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """Pooled word edit counts; inputs are already normalised, and either side may be empty."""
    return _count_edits(references, hypotheses, jiwer.process_words, lambda text: len(text.split()))


def normalised_word_errors(
    references: Sequence[str], hypotheses: Sequence[str], language: str | None = "en"
) -> WordErrors:
    """Pooled word edit counts after normalising both sides for LANGUAGE: the one "normalise then score"."""
    return word_errors(
        [normalize(r, language) for r in references], [normalize(h, language) for h in hypotheses]
    )


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Pooled character error rate (spaces count as characters, as in jiwer.cer)."""
    edits = _count_edits(references, hypotheses, jiwer.process_characters, lambda text: len(text.strip()))
    return edits.wer


def utterance_wer(reference: str, hypothesis: str) -> float:
    """WER of one utterance; an empty reference scores 0.0 against an empty hypothesis, else 1.0."""
    return word_errors([reference], [hypothesis]).wer


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length, as Whisper computes it; 0.0 for empty text."""
    text_bytes = text.encode("utf-8")
    return len(text_bytes) / len(zlib.compress(text_bytes)) if text_bytes else 0.0


def repeated_ngrams(words: Sequence[str] | str, n: int) -> int:
    """How many n-gram occurrences repeat an earlier one; a str is split into words first."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if isinstance(words, str):
        words = words.split()
    ngram_counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return sum(count - 1 for count in ngram_counts.values())


def _count_edits(
    references: Sequence[str],
    hypotheses: Sequence[str],
    align: Callable[[list[str], list[str]], jiwer.WordOutput | jiwer.CharacterOutput],
    count_units: Callable[[str], int],
) -> WordErrors:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("references and hypotheses must be lists of strings, not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    substitutions = deletions = insertions = hits = ref_units = 0
    aligned_refs, aligned_hyps = [], []
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        n_ref, n_hyp = count_units(reference), count_units(hypothesis)
        if n_ref and n_hyp:
            aligned_refs.append(reference)
            aligned_hyps.append(hypothesis)
        else:  # some jiwer versions reject empty references; nothing to align anyway
            deletions += n_ref
            insertions += n_hyp
            ref_units += n_ref
    if aligned_refs:
        alignment = align(aligned_refs, aligned_hyps)
        substitutions += alignment.substitutions
        deletions += alignment.deletions
        insertions += alignment.insertions
        hits += alignment.hits
        ref_units += alignment.substitutions + alignment.deletions + alignment.hits
    return WordErrors(substitutions, deletions, insertions, hits, ref_units)
