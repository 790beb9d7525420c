"""Audio-length encoder windows: a student that encodes the audio it is given, not Whisper's fixed 30 s.

Whisper pads every input to 30 s and its encoder attends over all 1500 frames, so a 6 s streaming buffer
costs as much to encode as a full window. Cutting the padding off an off-the-shelf Whisper does not work
(bundled:base on 80 FOTAQ dev lines: 10.1 % WER padded, 261 % with a 1 s margin: it loops), but a student whose
encoder is trained on short windows learns to. A model whose config holds
`speechkd_encoder_window: "audio"` gets an encoder that accepts log-mel input shorter than 3000 frames, and
speechkd's decoding loop and trainer hand it the audio plus `PAD_SECONDS` of padding, rounded up to whole
seconds, instead of 30 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechkd.options import ENCODER_WINDOWS

CONFIG_KEY = "speechkd_encoder_window"
WINDOWS = ENCODER_WINDOWS  # padded: Whisper's 30 s; audio: the audio's length plus a margin
PAD_SECONDS = 2.0  # silence after the audio (with 1 s the demo student repeated short lines: 22 % WER)
FRAMES_PER_SECOND = 100  # log-mel frames; the encoder halves them


class AudioWindowEncoder(WhisperEncoder):
    """Whisper's encoder, accepting any even number of log-mel frames up to the model's maximum."""

    def forward(self, input_features: torch.Tensor, attention_mask=None, **kwargs) -> BaseModelOutput:
        frames, most = input_features.shape[-1], max_frames(self.config)
        if frames > most or frames % 2:
            raise ValueError(f"the encoder takes an even number of log-mel frames up to {most}, not {frames}")
        hidden = torch.nn.functional.gelu(self.conv1(input_features))
        hidden = torch.nn.functional.gelu(self.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + self.embed_positions.weight[: hidden.shape[1]]
        hidden = torch.nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        for layer in self.layers:
            if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
                continue
            hidden = layer(hidden, None)
        return BaseModelOutput(last_hidden_state=self.layer_norm(hidden))


def max_frames(config) -> int:
    return 2 * config.max_source_positions


def window_of(model) -> str:
    """'audio' for a model trained on audio-length windows, else 'padded' (every Whisper checkpoint)."""
    return getattr(model.config, CONFIG_KEY, None) or "padded"


def set_window(model, window: str):
    """Give MODEL the encoder window WINDOW (recorded in its config, so a saved checkpoint keeps it)."""
    if window not in WINDOWS:
        raise ValueError(f"encoder window must be one of {', '.join(WINDOWS)}, not {window!r}")
    setattr(model.config, CONFIG_KEY, window)
    encoder = model.get_encoder()
    if window == "audio":
        encoder.__class__ = AudioWindowEncoder
    elif isinstance(encoder, AudioWindowEncoder):
        encoder.__class__ = WhisperEncoder
    return model


def apply_window(model):
    """After loading: install the encoder the checkpoint's config asks for."""
    return set_window(model, window_of(model))


def window_frames(model, duration: float, pad: float = PAD_SECONDS) -> int:
    """Log-mel frames MODEL's encoder reads for DURATION seconds of audio and PAD after (3000 when padded)."""
    most = max_frames(model.config)
    if window_of(model) != "audio":
        return most
    return min(most, FRAMES_PER_SECOND * math.ceil(duration + pad))


def cut_features(model, features: torch.Tensor, duration: float) -> torch.Tensor:
    """FEATURES (padded to 30 s) cut to MODEL's window for the longest clip of DURATION seconds."""
    return features[..., : window_frames(model, duration)]


def same_window_groups(windows: Sequence[int]) -> list[list[int]]:
    """Indices of WINDOWS grouped by equal window, groups in order of first appearance.

    Decoding and training batch only within a group, so an audio-window model reads each utterance on its own
    window whatever its batch-mates are.
    """
    groups: dict[int, list[int]] = {}
    for i, window in enumerate(windows):
        groups.setdefault(window, []).append(i)
    return list(groups.values())
