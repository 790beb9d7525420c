"""The one batched Whisper decoding loop, shared by transcribe, pseudo-label, distill, evaluate and stream."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from speechkd.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio
from speechkd.encoder_window import cut_features, same_window_groups, window_frames
from speechkd.options import WINDOW_SECONDS, DecodingOptions  # defined without torch: configs validate first
from speechkd.text import compression_ratio

TOKENS_PER_SECOND = 7.0  # fast English speech is ~5 tokens/s; the margin avoids clipping real text
MIN_NEW_TOKENS = 24


@dataclass
class DecodingResult:
    """One utterance's transcript and the confidence signals the filters read."""

    text: str = ""
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float = 0.0
    duration: float = 0.0
    long_form: bool = False
    error: str | None = None
    token_times: list[float] | None = None  # with token_timestamps: len(tokens) + 1 boundaries, seconds
    encoder_states: torch.Tensor | None = None  # with keep_encoder_states: (frames, d_model), float16, CPU

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def token_budget(duration: float, options: DecodingOptions, limit: int) -> int:
    """max_new_tokens for audio of DURATION seconds: duration-based unless fixed, never over LIMIT."""
    if options.max_new_tokens is not None:
        return min(options.max_new_tokens, limit)
    budget = MIN_NEW_TOKENS + math.ceil(duration * TOKENS_PER_SECOND)
    if options.return_timestamps:
        budget += 2 * math.ceil(duration / 2.0)
    return min(budget, limit)


def check_language_options(model, options: DecodingOptions) -> None:
    """Refuse a language or translation on an English-only model with a clear message."""
    if getattr(model.generation_config, "is_multilingual", False):
        return
    language = (options.language or "en").lower()
    if language not in ("en", "english") or options.task not in (None, "transcribe"):
        raise ValueError(
            f"this model is English-only: --language {options.language} / --task {options.task} need a "
            "multilingual model (e.g. bundled:base)"
        )


def language_kwargs(model, options: DecodingOptions) -> dict:
    """generate() arguments for beams, timestamps and (multilingual models) language and task."""
    kwargs = {"num_beams": options.num_beams, "return_timestamps": options.return_timestamps}
    if getattr(model.generation_config, "is_multilingual", False):
        kwargs["language"] = options.language
        kwargs["task"] = options.task or "transcribe"
    return kwargs


def _special_token_limit(processor) -> int:
    return processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")


def _no_speech_id(processor) -> int | None:
    for name in ("<|nospeech|>", "<|nocaptions|>"):
        token_id = processor.tokenizer.convert_tokens_to_ids(name)
        if token_id is not None and token_id != processor.tokenizer.unk_token_id:
            return token_id
    return None


@torch.no_grad()
def decode_short_form(
    model,
    processor,
    audios: Sequence[np.ndarray],
    options: DecodingOptions,
    prompt_ids: Sequence[int] | None = None,
    generate_kwargs: Mapping[str, Any] | None = None,
    encoder_states: torch.Tensor | None = None,
) -> list[DecodingResult]:
    """Decode a batch of ≤30 s clips in one generate call, with per-utterance confidence signals.

    `prompt_ids` (from `processor.get_prompt_ids(text)`) condition every clip on previous text.
    `generate_kwargs` go to `generate` as they are, e.g. `{"assistant_model": draft}` for speculative decoding.
    `encoder_states` (the clips' encoder output, e.g. a frozen encoder's cached output) skips the encoder.
    """
    windows = [window_frames(model, len(a) / SAMPLE_RATE) for a in audios]
    if encoder_states is None and len(set(windows)) > 1:
        return _decode_each_window(model, processor, audios, windows, options, prompt_ids, generate_kwargs)
    device, dtype = model.device, model.dtype
    inputs = processor.feature_extractor(
        list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True
    )
    features = inputs.input_features.to(device, dtype)
    durations = [len(a) / SAMPLE_RATE for a in audios]
    if encoder_states is None:
        encoder_states = model.get_encoder()(cut_features(model, features, max(durations))).last_hidden_state
    encoder_states = encoder_states.to(device, dtype)
    limit = model.config.max_target_positions - 8
    budgets = [token_budget(d, options, limit) for d in durations]
    budget = max(budgets)
    output = model.generate(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
        attention_mask=inputs.attention_mask.to(device),
        max_new_tokens=budget,
        return_dict_in_generate=True,
        output_scores=True,
        # one generate call, so the output keeps `sequences`/`scores` when timestamps are on too
        force_unique_generate_call=True,
        **_prompt_kwargs(prompt_ids, device),
        **language_kwargs(model, options),
        **_with_draft_inputs(generate_kwargs, features, max(durations)),
        **({"return_token_timestamps": True} if options.token_timestamps else {}),
    )
    output, times = _split_token_times(output)
    sequences = output.sequences
    n_steps = len(output.scores)
    generated = sequences[:, sequences.shape[1] - n_steps :]
    generated = _cut_to_budgets(generated, budgets, model.generation_config.eos_token_id)
    avg_logprobs = _average_logprobs(output, generated, model.generation_config.eos_token_id, budgets)
    start = torch.full((len(audios), 1), model.generation_config.decoder_start_token_id, device=device)
    no_speech = _no_speech_probs(model, processor, start, encoder_states)
    results = []
    for i, duration in enumerate(durations):
        tokens = _trim(generated[i].tolist(), model.generation_config.eos_token_id)
        text = processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        results.append(
            DecodingResult(
                text=text,
                tokens=tokens,
                avg_logprob=avg_logprobs[i],
                no_speech_prob=no_speech[i],
                compression_ratio=compression_ratio(text),
                duration=duration,
                token_times=_token_times(times, i, n_steps, len(tokens), duration),
                encoder_states=encoder_states[i].half().cpu().clone()
                if options.keep_encoder_states
                else None,
            )
        )
    return results


def _decode_each_window(model, processor, audios, windows, options, prompt_ids, generate_kwargs):
    """An audio-window encoder reads its batch's window: decode each window's clips on their own, so that an
    utterance's transcript never depends on its batch-mates."""
    results: list[DecodingResult | None] = [None] * len(audios)
    for group in same_window_groups(windows):
        clips = [audios[i] for i in group]
        for i, result in zip(
            group, decode_short_form(model, processor, clips, options, prompt_ids, generate_kwargs)
        ):
            results[i] = result
    return results


def _cut_to_budgets(generated: torch.Tensor, budgets: Sequence[int], eos: int) -> torch.Tensor:
    """Each row ends at its own token budget (as it would alone), not at the batch's longest clip's."""
    generated = generated.clone()
    for row, budget in enumerate(budgets):
        generated[row, budget:] = eos
    return generated


def _split_token_times(output) -> tuple[Any, torch.Tensor | None]:
    """With token timestamps on, generate returns a plain dict; give it attribute access like a ModelOutput."""
    if hasattr(output, "sequences"):
        return output, None
    fields = {"sequences_scores": None, "beam_indices": None} | dict(output)
    return SimpleNamespace(**fields), fields.pop("token_timestamps")


def _token_times(times: torch.Tensor | None, row: int, n_steps: int, n_tokens: int, duration: float):
    if times is None:
        return None
    generated = times[row, times.shape[1] - n_steps :].tolist()
    bounds = [min(round(float(t), 3), duration) for t in generated[: n_tokens + 1]]
    return bounds + [duration] * (n_tokens + 1 - len(bounds))


def _with_draft_inputs(
    generate_kwargs: Mapping[str, Any] | None, features: torch.Tensor, duration: float
) -> dict:
    """GENERATE_KWARGS, plus the log-mel input a draft with its own encoder reads (cut to its window)."""
    extra = dict(generate_kwargs or {})
    assistant = extra.get("assistant_model")
    if assistant is not None and assistant.config.is_encoder_decoder:
        extra["input_features"] = cut_features(assistant, features, duration)
    return extra


def _prompt_kwargs(prompt_ids: Sequence[int] | None, device: torch.device) -> dict:
    if prompt_ids is None:
        return {}
    return {"prompt_ids": torch.as_tensor(list(prompt_ids), dtype=torch.long, device=device)}


def _trim(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def _average_logprobs(output, generated: torch.Tensor, eos: int, budgets: Sequence[int]) -> list[float]:
    """Mean log-probability of the generated tokens (EOS included, padding after it excluded)."""
    if getattr(output, "beam_indices", None) is not None and output.sequences_scores is not None:
        return [float(s) for s in output.sequences_scores]
    logprobs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in output.scores], dim=1)
    picked = logprobs.gather(-1, generated.unsqueeze(-1)).squeeze(-1)
    is_eos = generated == eos
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    positions = torch.arange(generated.shape[1], device=generated.device)
    after_eos |= positions >= torch.as_tensor(budgets, device=generated.device).unsqueeze(1)
    picked = picked.masked_fill(after_eos | torch.isinf(picked), 0.0)
    counts = (~after_eos).sum(dim=1).clamp(min=1)
    return (picked.sum(dim=1) / counts).tolist()


def _no_speech_probs(
    model, processor, start: torch.Tensor, encoder_states: torch.Tensor
) -> list[float | None]:
    """Probability of the no-speech token right after <|startoftranscript|>, as Whisper defines it."""
    token_id = _no_speech_id(processor)
    if token_id is None:
        return [None] * start.shape[0]
    logits = model(encoder_outputs=(encoder_states,), decoder_input_ids=start).logits[:, 0].float()
    return torch.softmax(logits, dim=-1)[:, token_id].tolist()


@torch.no_grad()
def decode_long_form(
    model,
    processor,
    audio: np.ndarray,
    options: DecodingOptions,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> DecodingResult:
    """Sequential long-form decoding (transformers' algorithm, timestamps on) for one clip over 30 s."""
    inputs = processor.feature_extractor(
        [audio],
        sampling_rate=SAMPLE_RATE,
        return_tensors="pt",
        truncation=False,
        padding="longest",
        return_attention_mask=True,
    )
    kwargs = language_kwargs(model, options) | {"return_timestamps": True}
    sequences = model.generate(
        input_features=inputs.input_features.to(model.device, model.dtype),
        attention_mask=inputs.attention_mask.to(model.device),
        condition_on_prev_tokens=False,
        **kwargs,
        **(generate_kwargs or {}),
    )
    tokens = [t for t in sequences[0].tolist() if t < _special_token_limit(processor)]
    text = processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return DecodingResult(
        text=text,
        tokens=tokens,
        compression_ratio=compression_ratio(text),
        duration=len(audio) / SAMPLE_RATE,
        long_form=True,
    )


def decode_audios(
    model,
    processor,
    audios: Sequence[np.ndarray],
    options: DecodingOptions,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> list[DecodingResult]:
    """Decode clips of any length: short ones batched together, long ones sequentially.

    `generate_kwargs` go to every `generate` call (see `decode_short_form`).
    """
    results: list[DecodingResult | None] = [None] * len(audios)
    short = [i for i, a in enumerate(audios) if len(a) <= WINDOW_SECONDS * SAMPLE_RATE]
    short_set = set(short)
    for i, audio in enumerate(audios):
        if i in short_set:
            continue
        duration = len(audio) / SAMPLE_RATE
        if options.long_form:
            results[i] = decode_long_form(model, processor, audio, options, generate_kwargs=generate_kwargs)
        else:
            results[i] = DecodingResult(duration=duration, error=f"too_long: {duration:.1f} s > 30 s")
    lengths = [len(audios[i]) / SAMPLE_RATE for i in short]
    for batch_indices in length_grouped_batches(lengths, options.batch_size, model):
        chunk = [short[k] for k in batch_indices]
        batch = [audios[i] for i in chunk]
        decoded = decode_short_form(model, processor, batch, options, generate_kwargs=generate_kwargs)
        for i, result in zip(chunk, decoded):
            results[i] = result
    return results


def length_grouped_batches(durations: Sequence[float], batch_size: int, model=None) -> list[list[int]]:
    """Indices grouped into batches of similar duration, longest first (so memory problems show early).

    With MODEL, a batch holds only utterances of one encoder window (an audio-window model's input is then
    each utterance's own window; a padded model has a single window, so nothing changes).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, not {batch_size}")
    order = sorted(range(len(durations)), key=lambda i: -durations[i])
    if model is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    windows = [window_frames(model, d) for d in durations]
    groups = same_window_groups([windows[i] for i in order])
    return [
        [order[k] for k in group[i : i + batch_size]]
        for group in groups
        for i in range(0, len(group), batch_size)
    ]


def load_batch(paths: Sequence[str]) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Load each path, turning an AudioError into a per-utterance error message instead of a crash."""
    audios, errors = [], []
    for path in paths:
        try:
            audios.append(load_audio(path))
            errors.append(None)
        except AudioError as error:
            audios.append(None)
            errors.append(str(error))
    return audios, errors


def decode_loaded(
    model,
    processor,
    audios: Sequence[np.ndarray | None],
    errors: Sequence[str | None],
    options: DecodingOptions,
) -> list[DecodingResult]:
    """Decode the clips that loaded; a clip that failed to load becomes a result with its `audio_error`."""
    good = [k for k, audio in enumerate(audios) if audio is not None]
    decoded = decode_audios(model, processor, [audios[k] for k in good], options) if good else []
    results = [DecodingResult(error=f"audio_error: {e}") for e in errors]
    for k, result in zip(good, decoded):
        results[k] = result
    return results


def transcribe_paths(
    model, processor, paths: Sequence[str], options: DecodingOptions
) -> Iterator[tuple[list[int], list[DecodingResult]]]:
    """Yield (indices, results) per length-grouped batch; unreadable files become results with `error` set."""
    durations = [utterance_duration({"audio": p}) for p in paths]
    for batch in length_grouped_batches(durations, options.batch_size, model):
        audios, errors = load_batch([paths[i] for i in batch])
        yield batch, decode_loaded(model, processor, audios, errors, options)


def utterance_duration(record: dict) -> float:
    """A manifest record's duration: its `duration` field, else the file header; 0.0 if unreadable."""
    if isinstance(record.get("duration"), (int, float)):
        return float(record["duration"])
    try:
        return audio_duration(record["audio"])
    except AudioError:
        return 0.0  # loading fails later and is reported per utterance
