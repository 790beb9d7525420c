"""Streaming transcription: LocalAgreement-2 on real speech, the simulated clock, and the terminal demo."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechkd.audio import SAMPLE_RATE
from speechkd.streaming.sources import SimulatedSource
from speechkd.streaming.transcriber import (
    StreamingConfig,
    StreamingTranscriber,
    Update,
    Word,
    committed_prefix_length,
    common_prefix,
    latency_summary,
    normalize_word,
    run_stream,
    stream_statistics,
)


def words(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    """Words spoken one after another, `step` seconds each."""
    return [Word(w, start + i * step, start + (i + 1) * step) for i, w in enumerate(text.split())]


def test_hypotheses_agree_on_words_regardless_of_case_and_punctuation():
    assert normalize_word("Kitchen?") == normalize_word("kitchen") == "kitchen"
    assert normalize_word("don't") == "don't"
    assert common_prefix(words("What are you doing in"), words("what are you doing? Could")) == 4
    assert common_prefix(words("Lunch has"), words("Munch has")) == 0


def test_committed_words_are_found_at_the_start_of_a_new_hypothesis():
    committed = words("could I have a hamburger")
    assert committed_prefix_length(committed, words("Could I have a hamburger and fries")) == 5
    # a different rendering of the last committed word is not new text ...
    assert committed_prefix_length(committed, words("could I have a hamburgers and fries")) == 5
    # ... a dropped committed word does not eat a new one ...
    assert committed_prefix_length(committed, words("could I have hamburger and fries")) == 4
    # ... and words far apart in time never pair, however alike they look
    later = words("could I have a hamburger", start=10.0)
    assert committed_prefix_length(committed, later) == 0


def test_latency_summary():
    assert latency_summary([1.0, 2.0, 3.0, 4.0]) == {"mean": 2.5, "p50": 2.5, "p90": pytest.approx(3.7)}
    assert latency_summary([]) == {"mean": None, "p50": None, "p90": None}


def test_simulated_clock_delivers_what_arrived_while_the_model_was_busy():
    source = SimulatedSource(np.zeros(5 * SAMPLE_RATE, np.float32), chunk_seconds=1.0)
    samples, arrived = source.read(now=0.0)
    assert len(samples) == SAMPLE_RATE and arrived == 1.0
    samples, arrived = source.read(now=3.5)  # the first update took 2.5 s: 2.5 s more audio is waiting
    assert len(samples) == int(2.5 * SAMPLE_RATE) and arrived == 3.5
    reproducible = SimulatedSource(np.zeros(5 * SAMPLE_RATE, np.float32), 1.0, compute_aware=False)
    reproducible.read(now=0.0)
    assert reproducible.read(now=3.5)[1] == 2.0


class ScriptedTranscriber:
    """Stands in for the model: commits one word per update, each update 'costs' 0.25 s."""

    def __init__(self):
        self.stream_seconds, self.n_updates, self.n_trims, self.max_buffer_seen = 0.0, 0, 0, 0.0

    def insert_audio(self, samples):
        self.stream_seconds += len(samples) / SAMPLE_RATE

    def process(self) -> Update:
        self.n_updates += 1
        end = self.stream_seconds - 0.5
        return Update([Word(f"w{self.n_updates}", end - 0.3, end)], [], compute_seconds=0.25)

    def finish(self) -> Update:
        return Update([], [])


def test_word_latency_is_emission_time_minus_word_end():
    audio = np.zeros(3 * SAMPLE_RATE, np.float32)
    result = run_stream(ScriptedTranscriber(), SimulatedSource(audio, 1.0, compute_aware=False))
    assert [round(t, 2) for t in result.emitted_at] == [1.25, 2.25, 3.25]
    assert result.latencies == pytest.approx([0.75, 0.75, 0.75])  # 0.5 s to the chunk end + 0.25 s compute
    assert result.rtf == pytest.approx(0.25)


@pytest.fixture(scope="module")
def tiny_en(tiny_en_dir):
    from speechkd.models import load_model

    return load_model(str(tiny_en_dir))


@pytest.fixture(scope="module")
def long_stream(fotaq_dev_records) -> tuple[np.ndarray, str]:
    """30 dev lines back to back: over a minute of real dialogue, and its reference text."""
    from speechkd.audio import load_audio

    records = fotaq_dev_records[:30]
    audio = np.concatenate([load_audio(r["audio"]) for r in records])
    assert len(audio) / SAMPLE_RATE > 60
    return audio, " ".join(r["text"] for r in records)


@pytest.mark.slow
def test_long_stream_commits_what_offline_decoding_transcribes(tiny_en, long_stream):
    from speechkd.streaming.transcriber import offline_transcript

    model, processor = tiny_en
    audio, reference = long_stream
    config = StreamingConfig(chunk_seconds=2.0)  # 2 s updates on a fixed schedule keep CI quick and exact
    transcriber = StreamingTranscriber(model, processor, config)
    result = run_stream(transcriber, SimulatedSource(audio, config.chunk_seconds, compute_aware=False))

    offline = offline_transcript(model, processor, audio)
    stats = stream_statistics(result, offline)
    assert stats["wer"] < 0.10, (result.text, offline)  # streaming vs the offline transcript
    offline_wer = stream_statistics(as_stream(offline), reference)["wer"]
    assert stream_statistics(result, reference)["wer"] < offline_wer + 0.04  # both vs the reference
    # the buffer was trimmed, so its size (and each update's cost) stays bounded on any stream length
    assert result.n_trims >= 2
    assert result.max_buffer_seconds <= config.max_buffer_seconds + config.chunk_seconds
    assert stats["n_words"] == len(result.words) > 100
    # word times run forward through the stream and every word is emitted after it was spoken
    ends = [w.end for w in result.words]
    assert all(b >= a - 1.0 for a, b in zip(ends, ends[1:])) and ends[-1] <= result.audio_seconds
    assert min(result.latencies) > 0


def as_stream(text: str):
    """A finished stream holding `text` (to score an offline transcript the same way)."""
    from speechkd.streaming.transcriber import StreamResult

    return StreamResult(words=words(text))


@pytest.mark.slow
def test_stream_command_prints_text_and_statistics(tiny_en_dir, fotaq_dev_records, tmp_path, capsys):
    from speechkd.audio import load_audio
    from speechkd.cli import main

    records = fotaq_dev_records[:2]
    audio_path, reference_path = tmp_path / "two_lines.wav", tmp_path / "reference.txt"
    sf.write(audio_path, np.concatenate([load_audio(r["audio"]) for r in records]), SAMPLE_RATE)
    reference_path.write_text(" ".join(r["text"] for r in records))
    argv = ["stream", "--model", str(tiny_en_dir), "--audio", str(audio_path), "--as-fast-as-possible"]
    assert main([*argv, "--reference", str(reference_path), "--json", str(tmp_path / "stats.json")]) == 0
    out = capsys.readouterr().out
    assert "hamburger" in out and "word latency" in out and "RTF" in out
    assert "WER" in out and "vs the reference" in out
    assert (tmp_path / "stats.json").exists()


def test_mic_without_an_audio_library_says_what_to_install(tiny_en_dir, capsys):
    try:
        import sounddevice  # noqa: F401

        pytest.skip("sounddevice is installed here")
    except (ImportError, OSError):
        pass
    from speechkd.cli import main

    assert main(["stream", "--model", str(tiny_en_dir), "--mic"]) == 2
    assert "sounddevice" in capsys.readouterr().err
