"""Streaming transcription with LocalAgreement-2: re-decode a growing buffer, commit what two updates agree on.

The policy follows whisper_streaming (Macháček et al. 2023): each update re-transcribes the audio buffer
with the committed text that scrolled out of it as a prompt; the words on which the last two hypotheses
agree are committed, the rest is a partial hypothesis; once the buffer passes `trim_seconds` it is cut
after a committed sentence (keeping the latest one as context). Word times come from cross-attention
DTW over the model's alignment heads.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from speechkd.audio import SAMPLE_RATE
from speechkd.decoding import (
    WINDOW_SECONDS,
    DecodingOptions,
    check_language_options,
    decode_audios,
    decode_short_form,
)
from speechkd.streaming.config import StreamingConfig

NO_SPEECH_THRESHOLD = 0.6  # Whisper's rule: a window is silent when no_speech_prob > 0.6 and avg_logprob < -1
LOGPROB_THRESHOLD = -1.0
SENTENCE_END = re.compile(r"[.?!…][\"')»]*$")
MAX_PAIR_SHIFT = 1.5  # seconds: a committed word and a new hypothesis word further apart are different words


@dataclass(frozen=True)
class Word:
    """A transcribed word with its estimated time span in the stream (seconds from the stream start)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Update:
    """What one update produced: newly committed words and the current partial (uncommitted) words."""

    committed: list[Word]
    partial: list[Word]
    compute_seconds: float = 0.0

    @property
    def partial_text(self) -> str:
        return " ".join(w.text for w in self.partial)


def normalize_word(text: str) -> str:
    """The form two hypotheses are compared in: lower case, without punctuation."""
    return re.sub(r"[^\w']", "", text.lower()).strip("'")


def common_prefix(a: Sequence[Word], b: Sequence[Word]) -> int:
    """Number of leading words on which `a` and `b` agree (normalised compare)."""
    n = 0
    while n < min(len(a), len(b)) and normalize_word(a[n].text) == normalize_word(b[n].text):
        n += 1
    return n


def committed_prefix_length(committed: Sequence[Word], hypothesis: Sequence[Word]) -> int:
    """How many leading hypothesis words re-transcribe the `committed` words still in the buffer.

    An edit-distance alignment of all committed words to a prefix of the hypothesis, where two words
    can pair only if their times are within `MAX_PAIR_SHIFT`; the answer ends at the last paired word.
    """
    m, n = len(committed), len(hypothesis)
    if m == 0 or n == 0:
        return 0
    cost = [[i + j if i == 0 or j == 0 else 0 for j in range(n + 1)] for i in range(m + 1)]
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            pair = cost[i - 1][j - 1] + _pair_cost(committed[i - 1], hypothesis[j - 1])
            cost[i][j] = min(pair, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    best = min(cost[m])
    i, j = m, max(j for j in range(n + 1) if cost[m][j] == best)  # a re-rendered last word is not new
    while i > 0 and j > 0:  # walk back to the last hypothesis word paired with a committed one
        pair_cost = _pair_cost(committed[i - 1], hypothesis[j - 1])
        if pair_cost < 2 and cost[i][j] == cost[i - 1][j - 1] + pair_cost:
            return j
        i, j = (i - 1, j) if cost[i][j] == cost[i - 1][j] + 1 else (i, j - 1)
    return 0


def _pair_cost(committed: Word, hypothesis: Word) -> int:
    """0 same word, 1 a different rendering of it, 2 cannot be the same word (too far apart in time)."""
    shift = abs((committed.start + committed.end) - (hypothesis.start + hypothesis.end)) / 2
    if shift > MAX_PAIR_SHIFT:
        return 2
    return int(normalize_word(committed.text) != normalize_word(hypothesis.text))


def ensure_alignment_heads(model) -> None:
    """Word times come from cross-attention DTW: without valid heads use openai/whisper's default (upper half)."""
    layers, n_heads = model.config.decoder_layers, model.config.decoder_attention_heads
    heads = getattr(model.generation_config, "alignment_heads", None)
    if heads and all(0 <= layer < layers and 0 <= head < n_heads for layer, head in heads):
        return
    model.generation_config.alignment_heads = [
        [layer, head] for layer in range(layers // 2, layers) for head in range(n_heads)
    ]


def timed_words(tokens: Sequence[int], token_times: Sequence[float], tokenizer, offset: float) -> list[Word]:
    """Group text tokens into words (a word starts at a token with a leading space) with DTW times.

    A word ends where its last token that is not punctuation ends; times are shifted by `offset`.
    """
    first_special = tokenizer.eos_token_id
    groups: list[list[int]] = []  # token positions of each word
    for position, token in enumerate(tokens):
        if token >= first_special:
            continue
        if not groups or tokenizer.convert_ids_to_tokens(token).startswith("Ġ"):
            groups.append([])
        groups[-1].append(position)
    words = []
    for group in groups:
        text = tokenizer.decode([tokens[i] for i in group]).strip()
        spoken = [i for i in group if re.search(r"\w", tokenizer.decode([tokens[i]]))] or group
        start, end = token_times[group[0]], token_times[spoken[-1] + 1]
        if text:
            words.append(Word(text, round(offset + start, 3), round(offset + max(start, end), 3)))
    return words


class StreamingTranscriber:
    """LocalAgreement-2 over a trimmed audio buffer; feed audio, call `process()`, then `finish()`."""

    def __init__(self, model, processor, config: StreamingConfig | None = None):
        config = config or StreamingConfig()
        self.model, self.processor, self.config = model, processor, config
        self.options = config.decoding
        check_language_options(model, self.options)
        ensure_alignment_heads(model)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_offset = 0.0  # stream time of buffer[0]
        self.committed: list[Word] = []
        self.committed_in_buffer = 0  # how many of the last committed words lie in the buffer
        self.tail: list[Word] = []  # the uncommitted end of the previous hypothesis
        self.seen_until = 0.0  # stream time up to which the last update transcribed
        self.n_updates = 0
        self.n_trims = 0
        self.max_buffer_seen = 0.0

    @property
    def stream_seconds(self) -> float:
        """Audio received so far (seconds)."""
        return self.buffer_offset + len(self.buffer) / SAMPLE_RATE

    @property
    def buffer_seconds(self) -> float:
        return len(self.buffer) / SAMPLE_RATE

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.committed)

    def insert_audio(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples to the buffer."""
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, dtype=np.float32).reshape(-1)])
        self.max_buffer_seen = max(self.max_buffer_seen, self.buffer_seconds)

    def process(self) -> Update:
        """Re-transcribe the buffer, commit the agreed prefix, trim the buffer; return what changed."""
        started = time.perf_counter()
        hypothesis = self._transcribe()
        in_buffer = self.committed[len(self.committed) - self.committed_in_buffer :]
        known = committed_prefix_length(in_buffer, hypothesis)
        new_tail = hypothesis[known:]
        agreed = common_prefix(self.tail, new_tail)
        newly_committed = self._commit(new_tail[:agreed])
        self.tail = new_tail[agreed:]
        newly_committed += self._trim(hypothesis, known + agreed)
        self.n_updates += 1
        return Update(newly_committed, list(self.tail), time.perf_counter() - started)

    def finish(self) -> Update:
        """End of stream: transcribe any audio no update has seen (the model fell behind), commit the rest."""
        committed, compute = [], 0.0
        while self.stream_seconds - self.seen_until > 0.05:
            offset = self.buffer_offset
            update = self.process()
            committed, compute = committed + update.committed, compute + update.compute_seconds
            if self.buffer_offset == offset:  # stuck: let the audio already seen go
                self._cut(self.seen_until, words_left=0)
        committed += self._commit(self.tail)
        self.tail = []
        return Update(committed, [], compute)

    def _transcribe(self) -> list[Word]:
        window = self.buffer[: int(WINDOW_SECONDS * SAMPLE_RATE)]  # after a stall, the rest waits its turn
        self.seen_until = self.buffer_offset + len(window) / SAMPLE_RATE
        if len(window) < 0.1 * SAMPLE_RATE:
            return []
        prompt = self._prompt_text()
        prompt_ids = self.processor.get_prompt_ids(prompt).tolist() if prompt else None
        result = decode_short_form(self.model, self.processor, [window], self.options, prompt_ids)[0]
        silent = (result.no_speech_prob or 0.0) > NO_SPEECH_THRESHOLD and (
            result.avg_logprob is not None and result.avg_logprob < LOGPROB_THRESHOLD
        )
        if silent or result.token_times is None:
            return []
        return timed_words(result.tokens, result.token_times, self.processor.tokenizer, self.buffer_offset)

    def _prompt_text(self) -> str:
        scrolled_out = self.committed[: len(self.committed) - self.committed_in_buffer]
        text = " ".join(w.text for w in scrolled_out)[-self.config.prompt_chars :]
        return text.split(" ", 1)[-1] if len(text) == self.config.prompt_chars else text

    def _commit(self, words: list[Word]) -> list[Word]:
        end = self.stream_seconds
        words = [Word(w.text, min(w.start, end), min(w.end, end)) for w in words]
        self.committed.extend(words)
        self.committed_in_buffer += len(words)
        return words

    def _trim(self, hypothesis: list[Word], n_committed: int) -> list[Word]:
        """Past `trim_seconds`, cut after a committed sentence; past the hard cap, after any committed word.

        Returns the words it had to commit to make room (only when nothing was agreed for too long).
        """
        over_cap = self.buffer_seconds > self.config.max_buffer_seconds
        sentence_ends = [j for j in range(n_committed) if SENTENCE_END.search(hypothesis[j].text)]
        if self.buffer_seconds > self.config.trim_seconds and sentence_ends:
            # the latest committed sentence stays as audio context for what follows, unless over the cap
            keep_context = len(sentence_ends) > 1 and not over_cap
            self._cut_after(hypothesis, sentence_ends[-2] if keep_context else sentence_ends[-1], n_committed)
        if self.buffer_seconds <= self.config.max_buffer_seconds:
            return []
        forced = []
        if n_committed == 0:  # nothing agreed for too long: commit what lies well before the end
            keep_from = self.seen_until - (self.config.max_buffer_seconds - self.config.trim_seconds)
            forced = self._commit([w for w in hypothesis if w.end <= keep_from])
            self.tail, n_committed = hypothesis[len(forced) :], len(forced)
            if not forced:  # keep unconfirmed words' audio, unless the buffer outgrew Whisper's window
                first_word = min([keep_from] + [w.start for w in hypothesis])
                self._cut(keep_from if self.buffer_seconds > WINDOW_SECONDS else first_word, words_left=0)
                return []
        self._cut_after(hypothesis, n_committed - 1, n_committed)
        return forced

    def _cut_after(self, hypothesis: list[Word], j: int, n_committed: int) -> None:
        """Drop the audio up to the boundary after hypothesis word `j` (a committed one)."""
        boundary = hypothesis[j + 1].start if j + 1 < len(hypothesis) else hypothesis[j].end
        self._cut(self._quiet_point(boundary), words_left=n_committed - (j + 1))

    def _quiet_point(self, boundary: float, before: float = 0.8, after: float = 0.1) -> float:
        """The quietest 20 ms frame near a word boundary: cutting inside the next word would garble it."""
        frame = SAMPLE_RATE // 50
        lo = max(0, int((boundary - before - self.buffer_offset) * SAMPLE_RATE))
        hi = min(len(self.buffer), int((boundary + after - self.buffer_offset) * SAMPLE_RATE))
        n_frames = (hi - lo) // frame
        if n_frames < 1:
            return boundary
        energy = np.square(self.buffer[lo : lo + n_frames * frame]).reshape(n_frames, frame).mean(axis=1)
        return self.buffer_offset + (lo + (int(np.argmin(energy)) + 0.5) * frame) / SAMPLE_RATE

    def _cut(self, cut: float, words_left: int) -> None:
        drop = max(0, int(round((cut - self.buffer_offset) * SAMPLE_RATE)))
        if drop == 0:
            return
        self.buffer = self.buffer[drop:]
        self.buffer_offset += drop / SAMPLE_RATE
        self.committed_in_buffer = max(0, min(words_left, self.committed_in_buffer))
        self.n_trims += 1


@dataclass
class StreamResult:
    """A finished stream: committed words with their emission times, and the cost of producing them."""

    words: list[Word] = field(default_factory=list)
    emitted_at: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    n_updates: int = 0
    n_trims: int = 0
    max_buffer_seconds: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def latencies(self) -> list[float]:
        """Per committed word: emission time minus the time its end was spoken."""
        return [t - w.end for w, t in zip(self.words, self.emitted_at)]

    @property
    def rtf(self) -> float:
        """Real-time factor: compute seconds per audio second (< 1 keeps up with live audio)."""
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else 0.0


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    """Mean, median and 90th percentile of word latencies (None when nothing was committed)."""
    if not latencies:
        return {"mean": None, "p50": None, "p90": None}
    values = np.asarray(latencies, dtype=float)
    return {
        "mean": float(values.mean()),
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
    }


def stream_statistics(
    result: StreamResult, reference: str | None = None, language: str | None = "en"
) -> dict:
    """What the demo reports: latency summary, real-time factor, buffer use, and WER against `reference`."""
    from speechkd.text import normalised_word_errors

    wer = None
    if reference is not None:
        wer = normalised_word_errors([reference], [result.text], language).wer
    return {
        "n_words": len(result.words),
        "n_updates": result.n_updates,
        "n_trims": result.n_trims,
        "audio_seconds": result.audio_seconds,
        "compute_seconds": result.compute_seconds,
        "rtf": result.rtf,
        "max_buffer_seconds": result.max_buffer_seconds,
        "latency": latency_summary(result.latencies),
        "wer": wer,
        "text": result.text,
    }


def offline_transcript(model, processor, audio: np.ndarray, language: str | None = None) -> str:
    """The whole recording decoded at once (long-form when over 30 s): the reference a stream should match."""
    return decode_audios(model, processor, [audio], DecodingOptions(batch_size=1, language=language))[0].text


def run_stream(
    transcriber: StreamingTranscriber, source, on_update: Callable[[Update, float], None] | None = None
) -> StreamResult:
    """Feed `source` (see `speechkd.streaming.sources`) to `transcriber` until it ends.

    Word emission time = arrival time of the audio that completed the update + the update's compute time.
    """
    result, now = StreamResult(), 0.0
    while (chunk := source.read(now)) is not None:
        samples, arrived_at = chunk
        transcriber.insert_audio(samples)
        update = transcriber.process()
        now = arrived_at + update.compute_seconds
        _record(result, update, now, on_update)
    final = transcriber.finish()
    _record(result, final, max(now, transcriber.stream_seconds) + final.compute_seconds, on_update)
    result.audio_seconds = transcriber.stream_seconds
    result.n_updates, result.n_trims = transcriber.n_updates, transcriber.n_trims
    result.max_buffer_seconds = transcriber.max_buffer_seen
    return result


def _record(result: StreamResult, update: Update, now: float, on_update) -> None:
    result.words.extend(update.committed)
    result.emitted_at.extend([now] * len(update.committed))
    result.compute_seconds += update.compute_seconds
    if on_update is not None:
        on_update(update, now)
