"""Stage 3 data: pseudo-label token sequences, examples, the seeded (window-grouped) sampler and batches.

A frozen encoder gives the same output for an utterance every epoch, so it runs once per utterance and its
output is kept (float16, on disk or in memory); training steps then run decoders only. The teacher's
tempered top-k log-probabilities can be kept the same way, so that steps do not run the teacher at all.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from speechkd.audio import SAMPLE_RATE, AudioError, load_audio
from speechkd.config import ConfigError
from speechkd.encoder_cache import audio_key
from speechkd.encoder_window import same_window_groups
from speechkd.losses import IGNORE_INDEX, TopKTargets

MAX_AUDIO_SECONDS = 30.0
MAX_PREVIOUS_TOKENS = 224  # Whisper's prompt budget: half of the 448 decoder positions


@dataclass(frozen=True)
class Prompt:
    """The special tokens around a label: sot (+ language, task) (+ notimestamps) ... eot."""

    start: tuple[int, ...]  # <|startoftranscript|> (<|lang|> <|transcribe|>)
    no_timestamps: int
    end: int
    timestamp_begin: int  # first timestamp token; ids at or above it are timestamps
    previous: int | None = None  # <|startofprev|>, which introduces the previous text


def make_prompt(tokenizer, multilingual: bool, language: str | None, task: str = "transcribe") -> Prompt:
    """The label prompt for one language (multilingual models) or for an English-only model."""
    ids = tokenizer.convert_tokens_to_ids
    start = [ids("<|startoftranscript|>")]
    if multilingual:
        if not language:
            raise ConfigError("the model is multilingual: name the labels' language, e.g. --language en")
        for token in (f"<|{language.lower()}|>", f"<|{task}|>"):
            if ids(token) in (None, tokenizer.unk_token_id):
                raise ConfigError(f"the tokenizer has no {token} token: check --language / --task")
            start.append(ids(token))
    return Prompt(
        tuple(start), ids("<|notimestamps|>"), ids("<|endoftext|>"), ids("<|0.00|>"), ids("<|startofprev|>")
    )


@dataclass
class Example:
    """One training (or evaluation) utterance: where its audio is, its cache key and its label tokens."""

    id: str
    audio: str
    key: str
    text_ids: list[int] = field(default_factory=list)  # label text tokens, timestamps included if any
    prompt: Prompt | None = None
    text: str | None = None  # reference transcript (evaluation)
    previous_ids: list[int] = field(default_factory=list)  # text tokens of the clip before (prompting)
    duration: float = 0.0  # seconds of audio, known once the audio has been read

    @property
    def has_timestamps(self) -> bool:
        return any(t >= self.prompt.timestamp_begin for t in self.text_ids)

    def sequence(self, keep_timestamps: bool, with_previous: bool = False) -> tuple[list[int], int]:
        """(full token sequence, prompt length); timestamps are dropped unless kept (and present).

        WITH_PREVIOUS puts <|startofprev|> and the previous clip's text first, as Whisper conditions on earlier
        text; like the rest of the prompt, it carries no loss.
        """
        if keep_timestamps and self.has_timestamps:
            head, text = list(self.prompt.start), self.text_ids
        else:
            head = [*self.prompt.start, self.prompt.no_timestamps]
            text = [t for t in self.text_ids if t < self.prompt.timestamp_begin]
        if with_previous and self.previous_ids:
            head = [self.prompt.previous, *self.previous_ids, *head]
        return head + text + [self.prompt.end], len(head)


def label_tokens(tokenizer, label: str) -> list[int]:
    """Text tokens of a label, with the leading space Whisper emits before the first word."""
    label = label.strip()
    if not label:
        return []
    return tokenizer.encode(label if label.startswith("<|") else " " + label, add_special_tokens=False)


def training_examples(
    records: Sequence[dict],
    tokenizer,
    prompts: Callable[[str | None], Prompt],
    label_field: str,
    max_positions: int,
    max_previous: int = MAX_PREVIOUS_TOKENS,
) -> tuple[list[Example], Counter]:
    """Examples for the rows that carry a usable label; the rest are counted by reason, never raised on.

    Where a row also has LABEL_FIELD + "_timestamped" (the label with <|t|> tokens), that one is used. A row
    whose `previous` names another row (`speechkd data pack` writes it) gets that row's label as previous text,
    cut from the front to MAX_PREVIOUS tokens (with <|startofprev|>) and to fit MAX_POSITIONS.
    """
    examples, skipped = [], Counter()
    labels = {r["id"]: r[label_field] for r in records if isinstance(r.get(label_field), str)}
    for record in records:
        label = record.get(label_field)
        if not isinstance(label, str):
            skipped[f"no {label_field}"] += 1
            continue
        if float(record.get("duration") or 0.0) > MAX_AUDIO_SECONDS:
            skipped["audio over 30 s"] += 1
            continue
        timestamped = record.get(f"{label_field}_timestamped")  # pseudo-label --return-timestamps writes it
        prompt = prompts(record.get("language"))
        text_ids = label_tokens(tokenizer, timestamped if isinstance(timestamped, str) else label)
        example = Example(record["id"], record["audio"], audio_key(record["audio"]), text_ids, prompt)
        length = len(example.sequence(keep_timestamps=True)[0]) - 1
        if length > max_positions:
            skipped[f"label over {max_positions} tokens"] += 1
            continue
        previous = labels.get(record.get("previous"))
        room = min(max_previous, max_positions - length) - 1  # one position for <|startofprev|>
        if previous and room > 0 and prompt.previous is not None:
            example.previous_ids = label_tokens(tokenizer, previous)[-room:]
        examples.append(example)
    return examples, skipped


def evaluation_examples(records: Sequence[dict], text_field: str = "text") -> tuple[list[Example], Counter]:
    """Examples for the rows that have a reference transcript."""
    examples, skipped = [], Counter()
    for record in records:
        if not isinstance(record.get(text_field), str):
            skipped[f"no {text_field}"] += 1
            continue
        key = audio_key(record["audio"])
        examples.append(Example(record["id"], record["audio"], key, text=record[text_field]))
    return examples, skipped


def load_clips(examples: Sequence[Example]) -> tuple[list[Example], list[np.ndarray], dict[str, str]]:
    """(loaded examples, their audio, {key: error}) — unreadable or over-30-s audio goes to the errors."""
    loaded, audios, errors = [], [], {}
    for example in examples:
        try:
            audio = load_audio(example.audio)
        except AudioError as error:
            errors[example.key] = f"{example.id}: {error}"
            continue
        if len(audio) > MAX_AUDIO_SECONDS * SAMPLE_RATE:
            errors[example.key] = f"{example.id}: {len(audio) / SAMPLE_RATE:.1f} s of audio is over 30 s"
            continue
        loaded.append(example)
        audios.append(audio)
    return loaded, audios, errors


def keep_timestamps(seed: int, epoch: int, index: int, probability: float) -> bool:
    """The per-utterance, per-epoch draw of keeping timestamp tokens (deterministic, so resume is exact)."""
    return bool(np.random.default_rng([seed, epoch, index]).random() < probability)


def keep_previous(seed: int, epoch: int, index: int, probability: float) -> bool:
    """The per-utterance, per-epoch draw of prompting with the previous text (independent of the one above)."""
    return bool(np.random.default_rng([seed, epoch, index, 1]).random() < probability)


def epoch_batches(
    n_examples: int,
    batch_size: int,
    epoch: int,
    seed: int,
    rank: int,
    world: int,
    windows: Sequence[int] | None = None,
) -> list:
    """This process's batches of example indices for EPOCH: a seeded shuffle, split across processes.

    Every process gets the same number of batches (the order is wrapped round to a multiple of WORLD). With
    WINDOWS (each example's encoder window, for an audio-window student), a batch holds one window only: the
    shuffled examples are grouped by window, cut into batches, and the batches shuffled.
    """
    if batch_size < 1 or world < 1:
        raise ConfigError(f"distill: batch_size must be a positive integer, not {batch_size}")
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n_examples, generator=generator).tolist()
    step = batch_size * world
    if windows is None:
        while len(order) % world:
            order.append(order[len(order) % n_examples])
        return [order[start : start + step][rank::world] for start in range(0, len(order), step)]
    groups = same_window_groups([windows[i] for i in order])
    chunks = [[order[k] for k in group[i : i + step]] for group in groups for i in range(0, len(group), step)]
    chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
    return [_wrapped(chunk, world)[rank::world] for chunk in chunks]


def _wrapped(indices: list[int], world: int) -> list[int]:
    """INDICES repeated from the front up to a multiple of WORLD, so every process gets a row."""
    return [indices[i % len(indices)] for i in range(-(-len(indices) // world) * world)]


@dataclass
class Batch:
    """Padded decoder inputs and labels plus what the step needs from the caches."""

    ids: list[str]
    decoder_input_ids: torch.Tensor  # [B, L] padded with eot
    labels: torch.Tensor  # [B, L] prompt and padding are IGNORE_INDEX
    encoder_states: torch.Tensor | None = None  # the student's (frozen) encoder output
    teacher_states: torch.Tensor | None = None  # the teacher's own encoder output, when not shared
    features: torch.Tensor | None = None  # log-mel input, when the student's encoder runs every step
    teacher_topk: TopKTargets | None = None
    durations: list[float] | None = None  # seconds of audio per row (an audio-window student's encoder input)

    def to(self, device: torch.device) -> Batch:
        moved = {
            name: getattr(self, name).to(device) if getattr(self, name) is not None else None
            for name in ("decoder_input_ids", "labels", "encoder_states", "teacher_states", "features")
        }
        topk = self.teacher_topk
        if topk is not None:
            topk = TopKTargets(*(t.to(device) for t in (topk.token_ids, topk.logprobs, topk.rest_logprob)))
        return Batch(self.ids, teacher_topk=topk, durations=self.durations, **moved)


def pad_sequences(
    sequences: Sequence[tuple[list[int], int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder_input_ids, labels) padded to the longest sequence of the batch (not to 448)."""
    length = max(len(tokens) for tokens, _ in sequences) - 1
    inputs = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
    for row, (tokens, n_prompt) in enumerate(sequences):
        n = len(tokens) - 1
        inputs[row, :n] = torch.tensor(tokens[:-1])
        labels[row, n_prompt - 1 : n] = torch.tensor(tokens[n_prompt:])  # no loss on the prompt
    return inputs, labels


def teacher_key(example: Example, sequence: list[int]) -> str:
    """Cache key of the teacher's targets: the audio and the exact decoder input."""
    return hashlib.sha1(f"{example.key}|{sequence}".encode()).hexdigest()[:24]


class Collator:
    """Turns a list of examples into a Batch for one epoch (the epoch seeds the timestamp draws)."""

    def __init__(
        self,
        examples,
        cache,
        teacher_cache,
        feature_extractor,
        seed: int,
        timestamp_probability: float,
        epoch: int = 0,
        prompt_probability: float = 0.0,
    ):
        self.examples, self.cache, self.teacher_cache = examples, cache, teacher_cache
        self.feature_extractor, self.seed, self.epoch = feature_extractor, seed, epoch
        self.timestamp_probability, self.prompt_probability = timestamp_probability, prompt_probability

    def sequences(self, indices: Sequence[int]) -> list[tuple[list[int], int]]:
        draws = [
            (keep_timestamps(self.seed, self.epoch, i, self.timestamp_probability),
             keep_previous(self.seed, self.epoch, i, self.prompt_probability))
            for i in indices
        ]  # fmt: skip
        return [self.examples[i].sequence(*draw) for i, draw in zip(indices, draws)]

    def __call__(self, indices: Sequence[int]) -> Batch:
        examples = [self.examples[i] for i in indices]
        sequences = self.sequences(indices)
        inputs, labels = pad_sequences(sequences, examples[0].prompt.end)
        batch = Batch([e.id for e in examples], inputs, labels)
        if self.cache is not None:
            entries = [self.cache.get(e.key) for e in examples]
            for name in ("encoder_states", "teacher_states", "features"):
                if name in entries[0]:
                    setattr(batch, name, torch.stack([entry[name] for entry in entries]))
            batch.durations = [float(entry["duration"]) for entry in entries]
        else:
            batch.features, batch.durations = self.load_features(examples)
        if self.teacher_cache is not None:
            parts = [self.teacher_cache.get(teacher_key(e, s[0])) for e, s in zip(examples, sequences)]
            batch.teacher_topk = TopKTargets(
                *(torch.cat([p[n] for p in parts]) for n in ("ids", "logprobs", "rest"))
            )
        return batch

    def load_features(self, examples: Sequence[Example]) -> torch.Tensor:
        loaded, audios, errors = load_clips(examples)
        if errors:  # the pre-pass checked every file, so this one changed since
            raise AudioError(examples[0].audio, "; ".join(errors.values()))
        features = self.feature_extractor(
            audios, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        return features, [len(audio) / SAMPLE_RATE for audio in audios]


def micro_batches(
    n_examples: int,
    collator: Collator,
    config,
    start: tuple[int, int],
    rank: int,
    world: int,
    windows: Sequence[int] | None = None,
):
    """Yield (batch, position after it) forever, epoch after epoch, from START = (epoch, batch index).

    CONFIG gives batch_size, seed and num_workers; a run resumed at a position sees the same batches. WINDOWS:
    see `epoch_batches`.
    """
    from torch.utils.data import DataLoader

    epoch, first = start
    while True:
        batches = epoch_batches(n_examples, config.batch_size, epoch, config.seed, rank, world, windows)
        if not batches:  # never spin on epochs without work
            raise ConfigError(
                f"distill: no batches to train on ({n_examples} examples, batch size {config.batch_size})"
            )
        collator.epoch = epoch
        loader = DataLoader(
            range(n_examples),
            batch_sampler=batches[first:],
            collate_fn=collator,
            num_workers=config.num_workers,
        )
        for index, batch in enumerate(loader, start=first + 1):
            yield batch, (epoch, index)
        epoch, first = epoch + 1, 0
