import pytest

from speechkd.text import (
    WordErrors,
    char_error_rate,
    compression_ratio,
    normalize,
    repeated_ngrams,
    utterance_wer,
    word_errors,
)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Mr. Smith's colour", "mister smith is color"),  # titles expanded, British spelling americanised
        ("Hmm, uh, it is ten percent.", "it is 10%"),  # fillers dropped, numbers standardised
        ("I have twenty-five dollars", "i have $25"),
        ("", ""),
    ],
)
def test_english_normalizer_follows_whisper(text, normalized):
    assert normalize(text) == normalized
    assert normalize(text, language="English") == normalized
    assert normalize(text, language=None) == normalized


def test_other_languages_get_the_basic_normalizer():
    assert normalize("¿Dónde está el baño? [música]", language="es") == "dónde está el baño"
    assert normalize("The  Colour (noise)", language="fr") == "the colour"


def test_word_errors_pool_substitutions_deletions_and_insertions_over_a_corpus():
    references = ["the cat sat on the mat", "hello world"]
    hypotheses = ["the cat sit on mat", "hello big world"]

    errors = word_errors(references, hypotheses)

    # "sat" -> "sit" is a substitution, the second "the" is deleted, "big" is inserted.
    assert errors == WordErrors(substitutions=1, deletions=1, insertions=1, hits=6, ref_words=8)
    assert errors.wer == pytest.approx(3 / 8)
    assert (errors.sub_rate, errors.del_rate, errors.ins_rate) == pytest.approx((1 / 8, 1 / 8, 1 / 8))


def test_empty_references_and_hypotheses_are_counted_not_rejected():
    errors = word_errors(["", "", "one two three", "four"], ["", "noise words", "", "four"])

    assert errors == WordErrors(substitutions=0, deletions=3, insertions=2, hits=1, ref_words=4)
    assert errors.wer == pytest.approx(5 / 4)


def test_a_corpus_of_empty_references_scores_zero_or_one():
    assert word_errors([""], [""]).wer == 0.0
    assert word_errors(["", " "], ["", "hallucinated words"]).wer == 1.0


def test_utterance_wer():
    assert utterance_wer("a b c d", "a x c d") == 0.25
    assert utterance_wer("a b", "") == 1.0
    assert utterance_wer("", "") == 0.0
    assert utterance_wer("", "something") == 1.0  # documented convention, not infinity


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_errors(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="lists of strings"):
        word_errors("a b", "a b")


def test_char_error_rate():
    assert char_error_rate(["abc", "de"], ["abd", "de"]) == pytest.approx(1 / 5)
    assert char_error_rate(["abc", ""], ["abc", "xy"]) == pytest.approx(2 / 3)
    assert char_error_rate([""], [""]) == 0.0


def test_compression_ratio_flags_repetitive_text():
    assert compression_ratio("") == 0.0
    assert compression_ratio("the quick brown fox jumps over the lazy dog") < 1.5
    assert compression_ratio("thank you. " * 20) > 2.4  # Whisper's hallucination threshold


def test_repeated_ngrams_counts_occurrences_beyond_the_first():
    assert repeated_ngrams("a b a b a b".split(), 2) == 3  # (a b) x3, (b a) x2 -> 2 + 1 repeats
    assert repeated_ngrams(["a", "a", "b"], 1) == 1
    assert repeated_ngrams("no repeats here", 2) == 0
    assert repeated_ngrams(["short"], 3) == 0
    with pytest.raises(ValueError):
        repeated_ngrams(["a"], 0)


def test_a_trailing_ellipsis_leaves_no_punctuation_word():
    assert (
        normalize("Lunch has already been served, and besides...")
        == "lunch has already been served and besides"
    )
    assert normalize("It costs 3.50 dollars.") == "it costs $3.50"
