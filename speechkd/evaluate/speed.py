"""Speed measured the Open ASR Leaderboard way: warm-up, synchronised wall-clock, pooled RTFx, latency."""

from __future__ import annotations

import inspect
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from speechkd.audio import SAMPLE_RATE
from speechkd.encoder_window import cut_features


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued GPU work so a timer reads finished compute, not launched kernels."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device | str | None, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, float]:
    """Call FN(*ARGS, **KWARGS) once; return (its result, wall-clock seconds), the device synchronised at both ends."""
    synchronize(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start


def rtfx(audio_seconds: float, compute_seconds: float) -> float | None:
    """Inverse real-time factor: pooled audio seconds over pooled compute seconds."""
    return audio_seconds / compute_seconds if compute_seconds > 0 else None


DURATION_BUCKETS = (
    (0.0, 5.0, "< 5 s"),
    (5.0, 15.0, "5-15 s"),
    (15.0, 30.0, "15-30 s"),
    (30.0, float("inf"), "> 30 s"),
)


def duration_bucket(seconds: float) -> str:
    """The duration bucket a clip's speed is reported in (an audio-window model's gain depends on length)."""
    return next(name for low, high, name in DURATION_BUCKETS if low <= seconds < high)


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 90)) -> dict[str, float | None]:
    """{"p50": ..., "p90": ...} of VALUES (None when there are none)."""
    if not values:
        return {f"p{p}": None for p in points}
    return {f"p{p}": float(np.percentile(values, p)) for p in points}


def rotated(items: Sequence, step: int) -> list:
    """ITEMS rotated by STEP, so that each system takes every position in turn (noise hits all alike)."""
    if not items:
        return []
    shift = step % len(items)
    return list(items[shift:]) + list(items[:shift])


# ------------------------------------------------------------------ where the time goes, per component


@dataclass
class CostProfile:
    """Per-call costs of one model at batch size 1, in milliseconds."""

    encoder_ms: float  # one 30 s window through the encoder
    first_step_ms: float  # first decoder forward: also projects 1500 encoder frames to cross-attention K/V
    decoder_step_ms: float  # one cached decoder forward (all layers + vocabulary projection) for 1 token
    projection_ms: float  # the vocabulary projection alone for 1 token
    generate_call_ms: float  # generate()'s cost beyond its tokens: setup and the first step
    generate_ms_per_token: float  # each further token in generate()
    overhead_ms_per_token: float  # generate per token minus the bare decoder step: framework cost
    utterances: int
    draft_step_ms: float | None = None  # a speculative draft's cached decoder step, when there is one
    draft_encoder_ms: float | None = None  # a draft with its own encoder: that encoder's cost
    verify_ms: float | None = None  # one teacher forward over verify_tokens tokens (drafted ones + 1)
    verify_tokens: int | None = None

    def utterance_ms(self, tokens: float) -> float:
        """Predicted milliseconds for one utterance (encoder + generate) that decodes to TOKENS tokens."""
        return self.encoder_ms + self.generate_call_ms + tokens * self.generate_ms_per_token

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


SHORT, LONG = 4, 24  # generate() is timed at these forced lengths: the difference is the per-token cost
REPEATS = 3  # each measurement is the fastest of 3: interruptions on a shared machine only ever add time


def fastest(device, fn: Callable[..., Any], *args, repeats: int = REPEATS, **kwargs) -> tuple[Any, float]:
    """FN's result and its fastest wall-clock time over REPEATS calls."""
    best, result = math.inf, None
    for _ in range(repeats):
        result, seconds = timed(device, fn, *args, **kwargs)
        best = min(best, seconds)
    return result, best


@torch.no_grad()
def measure_costs(
    model, processor, audio: np.ndarray, generate_kwargs: dict, draft=None, verify_tokens: int = 6
) -> dict[str, list[float]]:
    """Seconds for the encoder, bare cached decoder steps and generate() on one clip (see `summarize_costs`).

    generate() runs with its length forced (min = max new tokens), so models that would stop at different
    points are compared per token; the bare steps replay the generated tokens through the model's forward.
    """
    device, costs = model.device, defaultdict(list)
    features = processor.feature_extractor(
        [audio], sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features.to(device, model.dtype)
    window = cut_features(model, features, len(audio) / SAMPLE_RATE)  # an audio-window model reads less
    encoded, seconds = fastest(device, model.get_encoder(), window)
    costs["encoder"].append(seconds)
    states = encoded.last_hidden_state
    kwargs = dict(generate_kwargs, encoder_outputs=BaseModelOutput(last_hidden_state=states))
    if _own_encoder(draft):
        kwargs["input_features"] = features
    for name, length in (("short", SHORT), ("long", LONG)):
        output, seconds = fastest(
            device, model.generate, min_new_tokens=length, max_new_tokens=length, **kwargs
        )
        costs[name].append(seconds)
    sequence = output[0] if isinstance(output, torch.Tensor) else output.sequences[0]
    first, *rest = _decoder_step_times(model, states, sequence)
    costs["first"].append(first)
    costs["step"] += rest
    if draft is not None:
        if _own_encoder(draft):
            draft_encoded, seconds = fastest(device, draft.get_encoder(), features)
            costs["draft_encoder"].append(seconds)
            states = draft_encoded.last_hidden_state
        costs["draft_step"] += _decoder_step_times(draft, states, sequence)[1:]
        costs["verify"] += _decoder_step_times(model, encoded.last_hidden_state, sequence, verify_tokens)[1:]
    return costs


def _own_encoder(draft) -> bool:
    return draft is not None and draft.config.is_encoder_decoder


def summarize_costs(model, measured: Sequence[dict], verify_tokens: int = 6) -> CostProfile:
    """One CostProfile from `measure_costs` of several clips, plus the vocabulary projection timed alone."""
    costs = defaultdict(list)
    for one in measured:
        for key, values in one.items():
            costs[key] += values
    hidden = torch.zeros(1, 1, model.config.d_model, device=model.device, dtype=model.dtype)
    _, projection_s = fastest(model.device, lambda: [model.proj_out(hidden) for _ in range(20)])
    ms = {key: 1000 * float(np.mean(values)) for key, values in costs.items()}
    median_ms = {key: 1000 * float(np.median(values)) for key, values in costs.items()}
    per_token_ms = (ms["long"] - ms["short"]) / (LONG - SHORT)
    return CostProfile(
        encoder_ms=ms["encoder"],
        first_step_ms=median_ms["first"],
        decoder_step_ms=median_ms["step"],
        projection_ms=1000 * projection_s / 20,
        generate_call_ms=ms["short"] - SHORT * per_token_ms,
        generate_ms_per_token=per_token_ms,
        overhead_ms_per_token=per_token_ms - median_ms["step"],
        utterances=len(measured),
        draft_step_ms=median_ms.get("draft_step"),
        draft_encoder_ms=ms.get("draft_encoder"),
        verify_ms=median_ms.get("verify"),
        verify_tokens=verify_tokens if "verify" in costs else None,
    )


def _decoder_step_times(model, states: torch.Tensor, sequence: torch.Tensor, width: int = 1) -> list[float]:
    """Seconds per step to replay SEQUENCE through MODEL's forward with its KV cache, WIDTH tokens a step.

    MODEL is a Whisper encoder-decoder or a decoder-only draft (`WhisperForCausalLM`) reading STATES.
    The first step reads one token and also projects the encoder states to cross-attention keys and values;
    WIDTH > 1 times what verifying WIDTH - 1 drafted tokens costs the teacher.
    """
    ids = sequence.view(1, -1).to(model.device)
    if model.config.is_encoder_decoder:
        context = {"encoder_outputs": BaseModelOutput(last_hidden_state=states)}
        name = "decoder_input_ids"
    else:
        context = {"encoder_outputs": (states,)}
        name = "input_ids"
    cache_name, cache, times = _cache_keyword(model), None, []
    for start in [0, *range(1, ids.shape[1] - width + 1, width)]:
        chunk = ids[:, start : start + (1 if start == 0 else width)]
        output, seconds = timed(model.device, _step, model, context | {name: chunk, cache_name: cache})
        cache = output.past_key_values
        times.append(seconds)
    return times


def _step(model, inputs: dict):
    output = model(**inputs, use_cache=True)
    output.logits[:, -1].argmax(-1)  # the greedy pick, as generate makes it
    return output


def _cache_keyword(model) -> str:
    """`cache` in recent transformers 5.x, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
